from celery import shared_task

from ratings import services


@shared_task(name="ratings.decide_due", acks_late=True)
def decide_due() -> int:
    """Results whose report window ended stand by majority or are void (docs/ratings.md)."""
    return services.results_decide_due()
