/* W-TinyLFU's frequency sketch, laid out as Caffeine's FrequencySketch (ben-manes/caffeine,
 * FrequencySketch.java): 4-bit counters, sixteen to a 64-bit word, eight words to a 64-byte
 * block. A key's hash picks one block; its 4 counters are one in each pair of words of that
 * block (counter i in word 2i or 2i+1, at one of 16 nibbles), so an increment or an estimate
 * touches one cache line, with shifts and masks on 64-bit words. The pure-Python twin
 * (_policy_py._Sketch) computes the same counters.
 *
 * `s` is the key's spread hash (_spread: Fibonacci hashing, high bits folded in), computed once
 * per operation: its low bits choose the block, its high 32 bits the counters (a byte each: bit 0
 * the word of the pair, bits 1..4 the nibble). */
#ifndef FASTLRU_SKETCH_H
#define FASTLRU_SKETCH_H

#include <stdint.h>
#include <stddef.h>

#define FASTLRU_SKETCH_RESET 0x7777777777777777ULL

/* Where a key's counters live: its block's first word, the counter bytes `c`, then counter i's
 * word in the block and its bit offset. */
#define FASTLRU_SKETCH_BLOCK(s, block_mask) ((size_t)(((s) & (block_mask)) << 3))
#define FASTLRU_SKETCH_BYTES(s) ((uint32_t)((s) >> 32))
#define FASTLRU_SKETCH_WORD(block, c, i) ((block) + ((i) << 1) + (((c) >> ((i) << 3)) & 1))
#define FASTLRU_SKETCH_SHIFT(c, i) ((unsigned)((((c) >> ((i) << 3)) >> 1) & 15) << 2)

/* The smallest of the key's 4 counters (0..15). */
static inline int
fastlru_sketch_estimate(const uint64_t *table, uint64_t block_mask, uint64_t s)
{
    const uint64_t *t = table + FASTLRU_SKETCH_BLOCK(s, block_mask);
    uint32_t c = FASTLRU_SKETCH_BYTES(s);
    unsigned a = (unsigned)(t[FASTLRU_SKETCH_WORD(0, c, 0)] >> FASTLRU_SKETCH_SHIFT(c, 0)) & 15;
    unsigned b = (unsigned)(t[FASTLRU_SKETCH_WORD(0, c, 1)] >> FASTLRU_SKETCH_SHIFT(c, 1)) & 15;
    unsigned d = (unsigned)(t[FASTLRU_SKETCH_WORD(0, c, 2)] >> FASTLRU_SKETCH_SHIFT(c, 2)) & 15;
    unsigned e = (unsigned)(t[FASTLRU_SKETCH_WORD(0, c, 3)] >> FASTLRU_SKETCH_SHIFT(c, 3)) & 15;
    a = a < b ? a : b;
    d = d < e ? d : e;
    return (int)(a < d ? a : d);
}

/* Adds one to counter i unless it is 15 (no branch); `added` gets 1 if it did. The 4 counters
 * are in 4 different words, so each step reads and writes its own. */
#define FASTLRU_SKETCH_ADD_ONE(t, c, i, added) do {                           \
        uint64_t *w_ = (t) + FASTLRU_SKETCH_WORD(0, c, i);                      \
        unsigned sh_ = FASTLRU_SKETCH_SHIFT(c, i);                             \
        uint64_t one_ = (uint64_t)(((*w_ >> sh_) & 15) != 15);                 \
        *w_ += one_ << sh_;                                                    \
        (added) |= (int)one_;                                                  \
    } while (0)

/* Adds one to each of the key's counters below 15; nonzero if any was. */
static inline int
fastlru_sketch_add(uint64_t *table, uint64_t block_mask, uint64_t s)
{
    uint64_t *t = table + FASTLRU_SKETCH_BLOCK(s, block_mask);
    uint32_t c = FASTLRU_SKETCH_BYTES(s);
    int added = 0;
    FASTLRU_SKETCH_ADD_ONE(t, c, 0, added);
    FASTLRU_SKETCH_ADD_ONE(t, c, 1, added);
    FASTLRU_SKETCH_ADD_ONE(t, c, 2, added);
    FASTLRU_SKETCH_ADD_ONE(t, c, 3, added);
    return added;
}

/* The doorkeeper (TinyLFU, section 3.4.2): one bit per slot, slot `(s >> 7) & door_mask`. */
#define FASTLRU_DOOR_SLOT(s, door_mask) ((size_t)(((s) >> 7) & (door_mask)))

/* The key's estimate: its smallest counter, plus its doorkeeper bit. */
static inline int
fastlru_sketch_frequency(const uint64_t *table, const uint8_t *door, uint64_t block_mask,
                         uint64_t door_mask, uint64_t s)
{
    size_t d = FASTLRU_DOOR_SLOT(s, door_mask);
    return fastlru_sketch_estimate(table, block_mask, s) + ((door[d >> 3] >> (d & 7)) & 1);
}

/* Records one occurrence of the key: sets its doorkeeper bit if unset, else adds to its
 * counters. Nonzero if anything changed (an addition, for the reset's period). */
static inline int
fastlru_sketch_record(uint64_t *table, uint8_t *door, uint64_t block_mask, uint64_t door_mask,
                      uint64_t s)
{
    size_t d = FASTLRU_DOOR_SLOT(s, door_mask);
    uint8_t bit = (uint8_t)(1u << (d & 7));
    if (!(door[d >> 3] & bit)) {
        door[d >> 3] |= bit;
        return 1;
    }
    return fastlru_sketch_add(table, block_mask, s);
}

/* Halves every counter (the sketch's aging). */
static inline void
fastlru_sketch_halve(uint64_t *table, size_t nwords)
{
    size_t i;
    for (i = 0; i < nwords; i++)
        table[i] = (table[i] >> 1) & FASTLRU_SKETCH_RESET;
}

#endif
