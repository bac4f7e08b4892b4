import sys

from bench.campaign.run import main

sys.exit(main())
