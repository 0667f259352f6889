"""torchsanity's front ends: the `torchsanity` command line and the language server."""
