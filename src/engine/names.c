/*
 * names: generated VM names in vmpooler's human-readable style,
 * "<adjective>-<noun>" (before the configured prefix), noun at most 10
 * letters and adjective at most 14 - len(noun), so at most 15 characters.
 *
 * The word lists (words.c) give some 50,000 pairs. A large installation can
 * run out of fresh pairs, so a retry after a clash appends a number
 * ("brave-otter-417"): the clone then still gets a unique name instead of
 * failing as vmpooler does after three clashes.
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine_internal.h"

static unsigned next_rand(unsigned *seed)
{
    /* xorshift32: cheap, per-caller state, good enough for names */
    unsigned x = *seed ? *seed : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x;
    return x;
}

void eng_name_generate(unsigned *seed, char *buf, size_t len)
{
    const char *noun = eng_nouns[next_rand(seed) % eng_n_nouns];
    size_t max_adj = 14 - strlen(noun);
    const char *adj = NULL;
    for (int i = 0; i < 32 && !adj; i++) {
        const char *a = eng_adjectives[next_rand(seed) % eng_n_adjectives];
        if (strlen(a) <= max_adj)
            adj = a;
    }
    if (!adj) {
        /* scan from a random start for one that fits (there always is one) */
        size_t start = next_rand(seed) % eng_n_adjectives;
        for (size_t i = 0; i < eng_n_adjectives && !adj; i++) {
            const char *a = eng_adjectives[(start + i) % eng_n_adjectives];
            if (strlen(a) <= max_adj)
                adj = a;
        }
    }
    snprintf(buf, len, "%s-%s", adj ? adj : "new", noun);
}

void eng_name_generate_numbered(unsigned *seed, char *buf, size_t len)
{
    char base[32];
    eng_name_generate(seed, base, sizeof base);
    snprintf(buf, len, "%s-%u", base, next_rand(seed) % 1000);
}
