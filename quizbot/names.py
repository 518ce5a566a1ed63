"""Game PINs and readable room addresses (pure; randomness passed in).

A PIN is six digits (100000-999999, so no client drops a leading zero), unique among the rooms the bot serves and
kept for a room's life. A `!newgame` room's localpart is `adjective-noun-NNNN` ("brave-otter-4821"): 256 x 256 x
10,000 = 655,360,000 (about 2^29) addresses, 700 times the PIN space. The PIN (six digits, asked of the bot at its
command rate) is the invitation; the address is readable and still far harder to guess than the PIN.
"""

from __future__ import annotations

import random
import re
from collections.abc import Container

PIN_DIGITS = 6
PIN_PATTERN = re.compile(r"[1-9][0-9]{5}")  # ASCII only: "١٢٣٤٥٦" is no PIN
_PIN_LOW, _PIN_HIGH = 10 ** (PIN_DIGITS - 1), 10**PIN_DIGITS - 1
MAX_TRIES = 1000  # far more than a full table needs; a bot with ~900,000 live rooms has other problems

_ADJECTIVES = """
    able agile airy amber ample apt arctic ardent astral atomic autumn azure balmy basic bold bonny brave breezy
    bright brisk bronze bubbly busy calm candid canny cheeky cheery chief chilly chipper civic classic clean
    clear clever cloudy cobalt cocoa comfy cool coral cosmic cozy crisp cuddly curious curly cyan dapper daring
    dashing deft dewy dizzy dreamy dusky eager early earnest easy elated electric elegant emerald epic even
    exact fabled fair famous fancy fast feisty fervent festive fiery fine firm fleet fluffy flying fond frank
    free fresh friendly frosty funny fuzzy gallant gentle giant giddy gifted glad gleaming gleeful glossy golden
    grand grassy great green groovy happy hardy hasty hazel hearty helpful heroic honest hopeful humble icy
    ideal indigo inky ivory jade jazzy jolly jovial joyful juicy keen kind kindly lavish lemon level lilac
    limber lively lofty loyal lucid lucky lunar lush magic majestic mellow merry mighty mild mint misty modest
    mossy nautical neat nifty nimble noble novel oaken orange orchid pastel patient peachy pearly peppy perky
    placid plucky plum polar polished prime proud quick quiet quirky radiant rapid rare ready regal robust rosy
    royal ruby rustic sandy sassy scarlet serene sharp shiny silent silky silver simple sleek smart smiling
    smooth snappy snazzy snowy snug solar solid sonic sparkly speedy spicy spry stable starry steady stellar
    stormy sturdy sublime sugary sunny super swift tangy tawny tender thrifty tidal tidy timely tiny topaz
    tranquil trusty twinkly upbeat upright urban valiant vast velvet vernal violet vivid warm wavy wild windy
    winged wise witty wondrous woolly zany zealous zesty zippy
"""
_NOUNS = """
    acorn alpaca anchor anemone antelope apple apricot armadillo arrow aster avocado badger bagel balloon bamboo
    banjo barley basil beacon bear beaver beetle berry biscuit bison blossom bluebird bobcat bobolink bongo
    bramble breeze brook buffalo bumblebee bunny butter cactus camel canary candle canoe canyon capybara
    cardinal caribou carrot cashew castle cedar cello chamois cheetah cherry chestnut chipmunk cider clam clover
    cobra cockatoo comet compass condor cookie coral cormorant cougar coyote crane cricket crocus crow cupcake
    cypress dahlia daisy dingo dolphin donkey dove dragon dune eagle echo eel egret elk ember emu falcon fennel
    fern ferret fig finch firefly fjord flamingo flute fox gannet gazelle gecko geyser ginger giraffe glacier
    goose gopher grape grouse gull guppy hamster harbor hare harp hawk hazelnut hedgehog heron hippo honey
    hornet husky hyacinth ibis iguana island jackal jaguar jasmine jay jellyfish juniper kayak kestrel kettle
    kingfisher kiwi koala ladybug lagoon lark lemur leopard lichen lily lime lion llama lobster lotus lynx macaw
    magnolia magpie manatee mandolin mango maple marigold marmot meadow meerkat melon mink minnow mole moose
    moth mountain mule mussel narwhal nectar newt nutmeg oak oasis ocean ocelot octopus olive orca osprey otter
    owl oyster panda panther papaya parrot peach pebble pelican penguin pepper petrel pheasant piano pigeon pine
    planet plover pony poppy possum puffin puma quail quartz rabbit raccoon radish raven reef reindeer river
    robin rocket rose saffron salmon seal sequoia shark sparrow sprout squid squirrel starling stork summit
    sunflower swallow swan tapir teal thistle thrush tiger toucan trout tulip turtle valley viola violin walnut
    walrus wasp weasel whale willow
"""
# Words of 3-10 ASCII letters: fine in a JID localpart (RFC 7622), easy to read aloud.
ADJECTIVES: tuple[str, ...] = tuple(_ADJECTIVES.split())
NOUNS: tuple[str, ...] = tuple(_NOUNS.split())


class Exhausted(Exception):
    """No free PIN or address was found (the bot serves far too many rooms)."""


def new_pin(rng: random.Random, taken: Container[str]) -> str:
    """A PIN no live room has."""
    for _ in range(MAX_TRIES):
        pin = str(rng.randint(_PIN_LOW, _PIN_HIGH))
        if pin not in taken:
            return pin
    raise Exhausted("no free game PIN")


def is_pin(text: str) -> bool:
    return PIN_PATTERN.fullmatch(text) is not None


def new_localpart(rng: random.Random, taken: Container[str]) -> str:
    """A readable room localpart ("brave-otter-4821") not in `taken`."""
    for _ in range(MAX_TRIES):
        localpart = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{rng.randrange(10_000):04d}"
        if localpart not in taken:
            return localpart
    raise Exhausted("no free room address")
