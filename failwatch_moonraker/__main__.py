from failwatch_moonraker.cli import main

raise SystemExit(main())
