from celery import shared_task

from moderation import services


@shared_task(name="moderation.prune_messages", acks_late=True)
def prune_messages() -> int:
    return services.messages_prune()
