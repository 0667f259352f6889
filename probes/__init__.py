"""Runtime sanity probes: run inside the user's interpreter; import only the standard library, torch and numpy."""

CHECK_IDS = (
    "initial-loss",
    "overfit-batch",
    "input-independence",
    "batch-independence",
    "gradient-flow",
    "determinism",
    "lr-range",
    "data-stats",
)

STATUSES = ("pass", "warn", "fail", "skip", "error")
