"""The chat's and reports' rate limits, counted like every other (lobby.throttles)."""

from lobby.throttles import PlayerThrottle


class ChatThrottle(PlayerThrottle):
    scope = "chat"  # THROTTLE_CHAT, 20/min


class ChatBurstThrottle(PlayerThrottle):
    scope = "chat_burst"  # THROTTLE_CHAT_BURST, 3/s: no wall of lines at once


class ReportThrottle(PlayerThrottle):
    scope = "report"  # THROTTLE_REPORT, 10/hour
