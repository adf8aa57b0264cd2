import sys

from redrive.cli import main

sys.exit(main())
