// Only the bot speaks for the bot. Any occupant can send a <question/> ("Type your password to win"), <scores/>
// or a private <room jid=…/>. The page believes quiz payloads only from the bot: in a room from the bot's
// occupant JID with the occupant-id (XEP-0421, set by the room) seen in the bot's presence; privately only from
// the bot's real JID. The bot's occupant is the room's owner under the bot's nick (maybe with a number), and,
// where the room shows real JIDs, with the bot's JID; the first one stays the bot until it leaves. Same rule:
// quizbot/trust.py. Pure: stanzas in, verdicts out; `storage` (sessionStorage in the page) keeps what it learnt
// for a reload. Tested in tests/js/trust.test.mjs.
import { MUC_USER, OCCUPANT_ID, bareJid, childOf, childrenOf, resourceOf } from "./protocol.js";

const STORE = "quiz-bots";

export class BotWatch {
  constructor({ bot, botNick, storage }) {
    this.bot = bot.toLowerCase(); // the bot's bare JID
    this.botNick = botNick;
    this.storage = storage;
    this.bots = new Map(); // room -> { nick, occupantId }
  }

  // Kept for a reload: stanzas the server sends again after a resumption come from a bot seen before it.
  save() { this.storage.setItem(STORE, JSON.stringify([...this.bots])); }
  load() {
    const saved = JSON.parse(this.storage.getItem(STORE) || "[]");
    if (Array.isArray(saved)) this.bots = new Map(saved.filter((e) => Array.isArray(e) && e.length === 2));
  }

  nickLooksLikeTheBot(nick) {
    return nick.startsWith(this.botNick) && /^\d*$/.test(nick.slice(this.botNick.length));
  }

  // Returns true when this presence is the bot's.
  presence(presence) {
    const from = presence.getAttribute("from") || "";
    const room = (bareJid(from) || "").toLowerCase();
    const nick = resourceOf(from);
    if (!nick) return false;
    const known = this.bots.get(room);
    const type = presence.getAttribute("type");
    if (type === "unavailable" || type === "error") {
      if (known && known.nick === nick) { this.bots.delete(room); this.save(); } // gone or renamed: prove it again
      return Boolean(known && known.nick === nick);
    }
    if (known && known.nick !== nick) return false; // the first bot occupant stays the bot
    const x = childOf(presence, MUC_USER, "x");
    const item = x && childOf(x, MUC_USER, "item");
    const real = item && item.getAttribute("jid");
    if (!item || item.getAttribute("affiliation") !== "owner" || !this.nickLooksLikeTheBot(nick) ||
        (real && bareJid(real).toLowerCase() !== this.bot)) {
      if (known) { this.bots.delete(room); this.save(); } // the bot's nick now belongs to someone else
      return false;
    }
    const id = childOf(presence, OCCUPANT_ID, "occupant-id");
    this.bots.set(room, { nick, occupantId: id ? id.getAttribute("id") : null });
    this.save();
    return true;
  }

  trusted(message) {
    const from = message.getAttribute("from") || "";
    if (message.getAttribute("type") !== "groupchat") return (bareJid(from) || "").toLowerCase() === this.bot;
    const bot = this.bots.get((bareJid(from) || "").toLowerCase());
    if (!bot || resourceOf(from) !== bot.nick) return false;
    const ids = childrenOf(message, OCCUPANT_ID, "occupant-id").map((c) => c.getAttribute("id"));
    return bot.occupantId === null ? ids.length === 0 : ids.length === 1 && ids[0] === bot.occupantId;
  }
}
