from celery import shared_task

from matchmaking import services


# Beat sends one every MATCHMAKER_INTERVAL; a run that waited longer than a few intervals in the
# queue is stale (a newer one is behind it), so it expires instead of piling up.
@shared_task(name="matchmaking.run", ignore_result=True, expires=10)
def run_matcher() -> int:
    return sum(report.matches for report in services.matchmaking_run())
