import sys

from widgetd.cli import main

sys.exit(main())
