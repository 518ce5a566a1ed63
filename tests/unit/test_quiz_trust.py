"""Which quiz payloads a client believes (quizbot/trust.py): only the bot's, in the room and in private."""

from __future__ import annotations

from lxml import etree

from quizbot.trust import BotWatch, has_quiz_payload

ROOM = "quiz@conference.localhost"
BOT = "quiz@localhost"


def presence(nick: str, *, affiliation: str = "owner", occupant_id: str | None = "bot-id", jid: str | None = None,
             kind: str | None = None) -> etree._Element:
    item = f"<item affiliation='{affiliation}' role='moderator'{f' jid={chr(39)}{jid}{chr(39)}' if jid else ''}/>"
    oid = f"<occupant-id xmlns='urn:xmpp:occupant-id:0' id='{occupant_id}'/>" if occupant_id else ""
    kind_attr = f" type='{kind}'" if kind else ""
    return etree.fromstring(f"<presence xmlns='jabber:client' from='{ROOM}/{nick}'{kind_attr}>"
                            f"<x xmlns='http://jabber.org/protocol/muc#user'>{item}</x>{oid}</presence>")


def message(sender: str, *, kind: str = "groupchat", occupant_ids: tuple[str, ...] = ("bot-id",)) -> etree._Element:
    ids = "".join(f"<occupant-id xmlns='urn:xmpp:occupant-id:0' id='{i}'/>" for i in occupant_ids)
    return etree.fromstring(f"<message xmlns='jabber:client' from='{sender}' type='{kind}'><body>Q</body>"
                            f"<question xmlns='urn:boshcm:quiz:0' id='q'/>{ids}</message>")


def watch_with_bot() -> BotWatch:
    watch = BotWatch(bot_jid=BOT, bot_nick="Quizbot")
    watch.presence(presence("Quizbot"))
    return watch


def test_the_bots_room_messages_with_its_occupant_id_are_trusted() -> None:
    watch = watch_with_bot()
    assert has_quiz_payload(message(f"{ROOM}/Quizbot"))
    assert watch.trusted(message(f"{ROOM}/Quizbot"))


def test_other_occupants_a_wrong_or_doubled_occupant_id_are_not() -> None:
    watch = watch_with_bot()
    watch.presence(presence("Troll", affiliation="none", occupant_id="troll-id"))
    assert not watch.trusted(message(f"{ROOM}/Troll", occupant_ids=("troll-id",)))
    assert not watch.trusted(message(f"{ROOM}/Quizbot", occupant_ids=("troll-id",)))
    assert not watch.trusted(message(f"{ROOM}/Quizbot", occupant_ids=()))
    assert not watch.trusted(message(f"{ROOM}/Quizbot", occupant_ids=("bot-id", "bot-id")))
    assert not watch.trusted(message("other@conference.localhost/Quizbot"))


def test_a_bot_look_alike_is_no_bot() -> None:
    watch = BotWatch(bot_jid=BOT, bot_nick="Quizbot")
    watch.presence(presence("Quizbot2", affiliation="none", occupant_id="troll-id"))  # not the owner
    watch.presence(presence("Quizbot3", jid="troll@localhost/x", occupant_id="troll-id"))  # an owner, not the bot
    watch.presence(presence("QuizbotX", occupant_id="troll-id"))  # not the bot's nick
    assert watch.bots == {}
    watch.presence(presence("Quizbot", jid="quiz@localhost/bot"))
    watch.presence(presence("Quizbot2", occupant_id="owner-id"))  # a second owner named like the bot: too late
    assert watch.trusted(message(f"{ROOM}/Quizbot"))
    assert not watch.trusted(message(f"{ROOM}/Quizbot2", occupant_ids=("owner-id",)))


def test_once_the_bot_leaves_its_nick_proves_nothing() -> None:
    watch = watch_with_bot()
    watch.presence(presence("Quizbot", kind="unavailable"))
    watch.presence(presence("Quizbot", affiliation="none", occupant_id="troll-id"))  # a troll takes the nick
    assert not watch.trusted(message(f"{ROOM}/Quizbot", occupant_ids=("troll-id",)))
    assert not watch.trusted(message(f"{ROOM}/Quizbot"))


def test_private_payloads_only_from_the_bots_real_jid() -> None:
    watch = watch_with_bot()
    assert watch.trusted(message("quiz@localhost/bot", kind="chat", occupant_ids=()))
    assert watch.trusted(message("Quiz@LocalHost/bot", kind="normal", occupant_ids=()))
    assert not watch.trusted(message(f"{ROOM}/Quizbot", kind="chat"))  # a MUC private message
    assert not watch.trusted(message("troll@localhost/x", kind="chat", occupant_ids=()))
