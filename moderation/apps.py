from django.apps import AppConfig


class ModerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "moderation"

    def ready(self):
        # moderation sits above lobby and matchmaking: it imports them, they never import it
        # (tests/test_layering.py). It guards their doors through lobby.gates, and hears
        # operators' actions in other apps' admin through config.audit's signal.
        from config import audit
        from lobby import gates
        from moderation import services

        gates.gate_register("moderation.bans", services.bans_refuse)
        audit.operator_acted.connect(services.on_operator_acted, dispatch_uid="moderation-audit")
