from django.apps import AppConfig


class LobbyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lobby"

    def ready(self):
        # The lobby follows its relay session; relays never imports lobby (design.md §1).
        from lobby import (
            schema,  # noqa: F401 - registers the OpenAPI session scheme
            services,
        )
        from relays import signals

        signals.session_ready.connect(services.on_relay_session_ready, dispatch_uid="lobby-ready")
        signals.session_failed.connect(services.on_relay_session_failed, dispatch_uid="lobby-fail")
        signals.session_closed.connect(
            services.on_relay_session_closed, dispatch_uid="lobby-closed"
        )
        signals.seat_authorized.connect(
            services.on_relay_seat_authorized, dispatch_uid="lobby-seat"
        )
        signals.seat_authorization_failed.connect(
            services.on_relay_seat_authorization_failed, dispatch_uid="lobby-seat-failed"
        )
