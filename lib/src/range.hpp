// An adaptive binary range coder for the integers of a q8 vector (compress.hpp), the wire's
// lossless second stage beside Rice codes (wire.cpp: Packed.q8_range; rice.hpp). Internal to the
// library.
//
// Each integer q in -127..127 is coded as its zigzag z (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...;
// z <= 254), eight binary decisions from the most significant bit down, each with its own
// probability: the node of a binary tree over the 256 values, under one of kContexts trees
// chosen by the zigzag of the integer before (the first integer: context 0). Probabilities are
// 11-bit, start at 1/2 and move 1/32 of the way toward each decision coded (LZMA's range coder,
// which is public domain: 32-bit range, carries through a cache byte). Both sides start from the
// same state for every vector and adapt the same way, so nothing about the model travels.
//
// On S1's deltas and broadcast changes this takes 5.65 bits an integer, against their order-0
// entropy of 5.56 and Rice codes' 6.29 (bench/RESULTS.md, issue 15).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsaga::range {

// out <- the range code of q[0..n) (integers in -127..127; its capacity is reused).
void encode(const std::int8_t* q, std::size_t n, std::vector<std::uint8_t>& out);

// q[0..n) <- the n integers coded in `data` (size bytes). Empty on success; else why not (the
// bytes end before the integers do, a first byte other than 0, an integer past 127, bytes left
// over), with q partly written.
std::string decode(const std::uint8_t* data, std::size_t size, std::size_t n, std::int8_t* q);

}  // namespace dsaga::range
