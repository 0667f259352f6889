"""Runtime sanity probes: run inside the user's interpreter; import only the standard library, torch and numpy."""

WATCH_CONFIG_ENV = "TORCHSANITY_WATCH_CONFIG"  # the watch child's settings (JSON: metrics, every, steps)
WATCH_EVERY = 25  # default: per-layer statistics every 25 optimizer steps (the overhead target holds)
