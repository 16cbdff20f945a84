import sys

from recgen.cli.main import main

sys.exit(main())
