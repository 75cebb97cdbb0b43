from django.db import migrations, models
from django.db.models import Q


def cancel_extra_searches(apps, schema_editor):
    """Before the constraint: a player searching in several queues keeps its newest ticket."""
    Ticket = apps.get_model("matchmaking", "Ticket")
    seen = set()
    for pk, player_id in (
        Ticket.objects.filter(status="searching")
        .order_by("player_id", "-created_at", "-pk")
        .values_list("pk", "player_id")
    ):
        if player_id in seen:
            Ticket.objects.filter(pk=pk).update(status="cancelled")
        seen.add(player_id)


class Migration(migrations.Migration):
    dependencies = [("matchmaking", "0001_initial")]

    operations = [
        migrations.RemoveConstraint(
            model_name="ticket", name="one_searching_ticket_per_player_and_profile"
        ),
        migrations.RunPython(cancel_extra_searches, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="ticket",
            constraint=models.UniqueConstraint(
                condition=Q(status="searching"),
                fields=("player",),
                name="one_searching_ticket_per_player",
            ),
        ),
    ]
