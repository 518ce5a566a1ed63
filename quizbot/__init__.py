"""quizbot: multiplayer quiz games in XMPP multi-user chat rooms."""

__version__ = "0.1.0"
