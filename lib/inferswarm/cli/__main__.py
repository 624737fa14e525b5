import sys

from inferswarm.cli.parser import main

sys.exit(main())
