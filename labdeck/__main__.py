import sys

from labdeck.cli import main

sys.exit(main())
