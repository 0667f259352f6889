import sys

from torchsanity.server.cli import main

sys.exit(main())
