// Rice codes for the integers of a q8 vector (compress.hpp), the wire's lossless second stage
// (wire.cpp: Packed.q8_rice). Internal to the library.
//
// The integers of a block (the scales' blocks: 64 entries, or Packed.runs) are coded with one
// Rice parameter k in 0..7, chosen per block as the one with the fewest bits. A block is k in 3
// bits, then per integer q its zigzag z (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...; z <= 254) as
// z >> k one-bits and a zero-bit, then the k low bits of z. Bits fill each byte from its least
// significant bit; the last byte is padded with zero bits.
//
// On the measured vectors (S1's deltas and broadcast changes) this is 6.2-6.8 bits an integer
// instead of 8: the integers of a block crowd near zero below its largest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsaga::rice {

// The block lengths of n entries: `runs` when not empty, else 64 each (the last one shorter).
struct Blocks {
  std::size_t n = 0;
  const std::uint8_t* runs = nullptr;
  std::size_t runs_count = 0;
};

// Bytes of the Rice form of q[0..n) (integers in -127..127) in these blocks.
std::size_t bytes(const std::int8_t* q, const Blocks& blocks);

// out <- the Rice form (its capacity is reused).
void encode(const std::int8_t* q, const Blocks& blocks, std::vector<std::uint8_t>& out);

// q[0..n) <- the integers of `data` (size bytes). Empty on success; else why not (an integer
// past 127, the bytes ending inside a block, bytes or bits left over), with q partly written.
std::string decode(const std::uint8_t* data, std::size_t size, const Blocks& blocks,
                   std::int8_t* q);

}  // namespace dsaga::rice
