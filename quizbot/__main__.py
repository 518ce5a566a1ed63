from quizbot.cli import main

raise SystemExit(main())
