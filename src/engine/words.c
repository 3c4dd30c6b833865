/*
 * words: the word lists behind generated VM names ("<adjective>-<noun>").
 * Plain lowercase words; every noun has at most 10 letters. names.c pairs
 * them so that the adjective has at most 14 - len(noun) letters.
 */
#include <stddef.h>

#include "engine/engine_internal.h"

const char *const eng_adjectives[] = {
    "able",     "agile",   "airy",     "alert",    "amber",   "ample",   "ancient",  "apt",
    "arctic",   "ardent",  "autumn",   "awake",    "azure",   "balmy",   "bare",     "basic",
    "bold",     "bouncy",  "brave",    "breezy",   "brief",   "bright",  "brisk",    "broad",
    "bronze",   "bubbly",  "busy",     "calm",     "candid",  "careful", "casual",   "cheery",
    "chief",    "chilly",  "civic",    "clean",    "clear",   "clever",  "cloudy",   "coastal",
    "cobalt",   "cosy",    "crafty",   "crisp",    "curious", "curly",   "cyan",     "dainty",
    "dapper",   "daring",  "deep",     "deft",     "dense",   "direct",  "distant",  "docile",
    "dreamy",   "dusty",   "eager",    "early",    "earnest", "easy",    "elated",   "elder",
    "electric", "elegant", "emerald",  "epic",     "equal",   "even",    "exact",    "fair",
    "famous",   "fancy",   "fast",     "fearless", "fertile", "fiery",   "fine",     "firm",
    "fleet",    "fluffy",  "flying",   "fond",     "formal",  "fresh",   "friendly", "frosty",
    "frugal",   "funny",   "gentle",   "giant",    "gifted",  "glad",    "gleaming", "glossy",
    "golden",   "good",    "graceful", "grand",    "grassy",  "great",   "green",    "hale",
    "handy",    "happy",   "hardy",    "hearty",   "heavy",   "helpful", "hidden",   "honest",
    "hopeful",  "humble",  "icy",      "ideal",    "idle",    "indigo",  "inner",    "jade",
    "jolly",    "joyful",  "jumpy",    "just",     "keen",    "kind",    "kindly",   "lavish",
    "lawful",   "lean",    "light",    "likely",   "limber",  "lively",  "local",    "lofty",
    "long",     "loyal",   "lucid",    "lucky",    "lunar",   "lush",    "magic",    "major",
    "mellow",   "merry",   "mighty",   "mild",     "minor",   "misty",   "modern",   "modest",
    "molten",   "moral",   "mossy",    "narrow",   "native",  "neat",    "nimble",   "noble",
    "north",    "novel",   "oaken",    "olive",    "open",    "orange",  "orderly",  "outer",
    "oval",     "pale",    "patient",  "peaceful", "pearly",  "perky",   "plain",    "plucky",
    "polar",    "polite",  "prompt",   "proper",   "proud",   "pure",    "quaint",   "quick",
    "quiet",    "radiant", "rapid",    "rare",     "ready",   "regal",   "rich",     "robust",
    "rocky",    "rosy",    "round",    "royal",    "ruby",    "rustic",  "sandy",    "scarlet",
    "secret",   "serene",  "shady",    "sharp",    "shiny",   "silent",  "silky",    "silver",
    "simple",   "sincere", "sleek",    "slim",     "smart",   "smooth",  "snowy",    "snug",
    "social",   "solar",   "solid",    "sonic",    "spare",   "speedy",  "spicy",    "spry",
    "stable",   "steady",  "stellar",  "still",    "stoic",   "stormy",  "sturdy",   "subtle",
    "sunny",    "super",   "supple",   "sweet",    "swift",   "tall",    "tame",     "tender",
    "tidy",     "tiny",    "topaz",    "tranquil", "true",    "trusty",  "umber",    "unique",
    "upbeat",   "urban",   "valid",    "vast",     "velvet",  "verdant", "vivid",    "vocal",
    "warm",     "wary",    "wavy",     "wealthy",  "whole",   "wild",    "windy",    "wise",
    "witty",    "woven",   "young",    "zany",     "zealous", "zesty",
};
const size_t eng_n_adjectives = sizeof eng_adjectives / sizeof eng_adjectives[0];

const char *const eng_nouns[] = {
    "acorn",   "alder",   "anchor",  "angel",   "apple",    "arch",    "arrow",   "aspen",
    "atlas",   "aurora",  "badger",  "bamboo",  "banjo",    "barley",  "basin",   "bay",
    "beacon",  "bear",    "beaver",  "bee",     "beetle",   "birch",   "bison",   "blossom",
    "boat",    "bobcat",  "boulder", "breeze",  "brook",    "buffalo", "butte",   "cactus",
    "camel",   "canal",   "canyon",  "cape",    "caribou",  "cedar",   "cello",   "chalk",
    "cherry",  "cliff",   "clover",  "cobra",   "comet",    "condor",  "coral",   "cougar",
    "cove",    "coyote",  "crane",   "creek",   "cricket",  "crow",    "cypress", "daisy",
    "dawn",    "delta",   "desert",  "dingo",   "dolphin",  "dove",    "dragon",  "drum",
    "dune",    "eagle",   "echo",    "eel",     "egret",    "elk",     "elm",     "ember",
    "falcon",  "fern",    "ferret",  "fig",     "finch",    "fjord",   "flame",   "flute",
    "fox",     "frog",    "garden",  "gazelle", "gecko",    "geyser",  "glacier", "glade",
    "goose",   "granite", "grape",   "grove",   "gull",     "harbor",  "hare",    "hawk",
    "hazel",   "heron",   "hill",    "hornet",  "horse",    "husky",   "ibis",    "iguana",
    "island",  "ivy",     "jackal",  "jaguar",  "jasmine",  "jay",     "kayak",   "kestrel",
    "kettle",  "kite",    "koala",   "lagoon",  "lake",     "lantern", "lark",    "laurel",
    "lemon",   "lemur",   "leopard", "lily",    "lime",     "linden",  "lion",    "lizard",
    "llama",   "lotus",   "lynx",    "magpie",  "mango",    "maple",   "marsh",   "meadow",
    "melon",   "mesa",    "mink",    "mist",    "moon",     "moose",   "moth",    "mountain",
    "mule",    "nebula",  "newt",    "oak",     "oasis",    "ocean",   "orca",    "orchid",
    "osprey",  "otter",   "owl",     "panda",   "panther",  "parrot",  "peach",   "pebble",
    "pelican", "pepper",  "petrel",  "pine",    "planet",   "plum",    "pond",    "poppy",
    "prairie", "puffin",  "puma",    "quail",   "quartz",   "rabbit",  "raccoon", "raven",
    "reef",    "ridge",   "river",   "robin",   "rock",     "rose",    "saffron", "salmon",
    "sapling", "seal",    "sequoia", "shark",   "shore",    "sparrow", "spruce",  "squid",
    "star",    "stone",   "stork",   "stream",  "summit",   "swan",    "thistle", "thrush",
    "tiger",   "timber",  "toad",    "topaz",   "tortoise", "trout",   "tulip",   "tundra",
    "turtle",  "valley",  "violet",  "viper",   "walnut",   "walrus",  "wasp",    "willow",
    "wolf",    "wombat",  "wren",    "yak",     "yucca",    "zebra",
};
const size_t eng_n_nouns = sizeof eng_nouns / sizeof eng_nouns[0];
