"""XEP-0115 verification strings (the XEP's own examples) and the bounded capability book."""

from __future__ import annotations

from lxml import etree

from boshcm.jid import JID
from boshcm.xmpp.pubsub.caps import CapsBook, verification_hash

DISCO = "http://jabber.org/protocol/disco#info"
SIMPLE = f"""<query xmlns='{DISCO}'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>"""
COMPLEX = f"""<query xmlns='{DISCO}'>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>"""


def test_the_xep_0115_simple_example_hashes_to_its_ver() -> None:
    assert verification_hash(etree.fromstring(SIMPLE), "sha-1") == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_the_xep_0115_complex_example_with_a_form_hashes_to_its_ver() -> None:
    assert verification_hash(etree.fromstring(COMPLEX.encode()), "sha-1") == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_duplicate_features_make_an_answer_unverifiable() -> None:
    doubled = SIMPLE.replace("</query>", "<feature var='http://jabber.org/protocol/muc'/></query>")
    assert verification_hash(etree.fromstring(doubled), "sha-1") is None
    assert verification_hash(etree.fromstring(SIMPLE), "md5") is None


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    book = CapsBook(domain="localhost", max_entries=2)
    vers = []
    for number in range(3):
        features = SIMPLE.replace("muc'/>", f"muc'/><feature var='urn:n{number}+notify'/>")
        ver = verification_hash(etree.fromstring(features), "sha-1")
        assert ver is not None
        vers.append(ver)
        jid = JID.parse(f"user{number}@localhost/r")
        presence = etree.fromstring(f"<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' "
                                    f"hash='sha-1' node='n' ver='{ver}'/></presence>")
        query = book.presence(jid, presence)
        assert query is not None
        answer = etree.fromstring(f"<iq xmlns='jabber:client' type='result' id='{query.iq.get('id')}' "
                                  f"from='{jid}'>{features}</iq>")
        assert book.answer(answer) == jid
        assert book.interests(jid) == {f"urn:n{number}"}
    newcomer = JID.parse("late@localhost/r")
    for index, ver in enumerate(vers):
        presence = etree.fromstring(f"<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' "
                                    f"hash='sha-1' node='n' ver='{ver}'/></presence>")
        asked = book.presence(newcomer, presence) is not None
        assert asked == (index == 0)  # the first ver was evicted, the last two are still known
