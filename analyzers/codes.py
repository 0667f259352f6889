"""Every rule's code and name, as a table: the CLI validates `--select` / `--ignore` / `[tool.torchsanity]`
codes against it without importing libcst or the rules (a cached run never needs them).

Kept by hand next to the registry: ``tests/cli/test_check_cache_index.py`` fails, printing the table to paste
here, when it differs from the codes and names of :func:`.registry.all_rules`. A code missing here is still
looked up in the registry before it is called unknown (:func:`.config.unknown_selector_message`).
"""

RULES: tuple[tuple[str, str], ...] = (
    ("SAN100", "unused-noqa"),
    ("SAN101", "missing-zero-grad"),
    ("SAN102", "zero-grad-after-backward"),
    ("SAN104", "accumulation-off-by-one"),
    ("SAN105", "accumulation-unscaled-loss"),
    ("SAN106", "loss-kept-with-graph"),
    ("SAN107", "optimizer-over-frozen-parameters"),
    ("SAN201", "eval-without-eval-mode"),
    ("SAN202", "eval-without-no-grad"),
    ("SAN203", "train-mode-not-restored"),
    ("SAN204", "functional-dropout-in-eval"),
    ("SAN301", "view-as-permute"),
    ("SAN302", "view-after-transpose"),
    ("SAN401", "unseeded-training"),
    ("SAN402", "unseeded-library-rng"),
    ("SAN501", "default-decay-schedule"),
    ("SAN502", "epoch-scheduler-per-batch"),
    ("SAN503", "scheduler-before-optimizer"),
    ("SAN504", "adam-l2-weight-decay"),
    ("SAN601", "softmax-into-cross-entropy"),
    ("SAN602", "nll-without-log-softmax"),
    ("SAN603", "sigmoid-into-bce-with-logits"),
    ("SAN701", "bias-before-batchnorm"),
    ("SAN702", "zero-weight-init"),
    ("SAN703", "forward-called-directly"),
    ("SAN801", "augmentation-in-eval"),
    ("SAN802", "unshuffled-training-loader"),
    ("SAN901", "discarded-tensor-move"),
)

CODES: tuple[str, ...] = tuple(code for code, _ in RULES)
