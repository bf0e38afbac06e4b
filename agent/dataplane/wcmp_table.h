// Consistent weighted (Maglev-style) fill of a service's WCMP bucket table.
//
// A service table has M buckets (M prime, AC_WCMP_BUCKETS by default); every bucket holds an
// instance id (0 = empty, never produced here). The fast path picks bucket flow_hash % M.
//
//  * quotas: bucket counts from the raw weights by largest-remainder apportionment, so each
//    instance gets floor(M*w/W) or that plus one (within one bucket of its exact share);
//  * preference lists: each instance walks the buckets in the order
//    (offset + j*skip) mod M, offset and skip from two independent hashes of its id (skip in
//    1..M-1, so with M prime the walk is a permutation of all buckets);
//  * fill: weighted round-robin in virtual time: the k-th pick of an instance with quota q is
//    scheduled at (k + 1/2) / q, ties by instance id; on its turn an instance takes the next
//    still-free bucket on its walk. Every instance therefore fills its buckets at an even pace
//    over the whole fill, which keeps its early (most preferred) buckets stable when other
//    instances' weights change.
//
// build_wcmp_table() depends on its input only (not on any earlier table), so every node that
// sees the same weights builds the same table. rebalance_wcmp_table() is the history-dependent
// alternative: it starts from the table in use and moves only the buckets it must, which reaches
// the lower bound (total variation distance between the two weight distributions, up to
// rounding) but makes the table depend on the sequence of updates.
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "anychain/maps.h"

namespace anychain::dataplane {

inline constexpr std::uint32_t kWcmpDefaultBuckets = AC_WCMP_BUCKETS;

struct WcmpMember {
  std::uint32_t instance_id = 0;  // != 0
  double weight = 0.0;            // finite, >= 0; only ratios matter
};

enum class WcmpErrc {
  kEmpty,               // no members at all
  kAllZeroWeight,       // members, but no positive weight
  kBadInstanceId,       // instance id 0 (reserved for "empty bucket")
  kDuplicateInstance,   // the same instance id twice
  kBadWeight,           // negative, NaN or infinite weight
  kBadTableSize,        // table size not a prime >= 2
  kTableSizeMismatch,   // tables of different sizes compared / rebalanced
};

struct WcmpError {
  WcmpErrc code;
  std::string message;  // human-readable, says which member / value was wrong
};

// True if n is prime (trial division; table sizes are small).
bool is_prime(std::uint32_t n);

// Bucket quota of every member (same order as `members`), summing to `buckets`.
// Largest-remainder apportionment; remainder ties go to the lower instance id.
std::expected<std::vector<std::uint32_t>, WcmpError> wcmp_quotas(
    std::span<const WcmpMember> members, std::uint32_t buckets = kWcmpDefaultBuckets);

// The bucket -> instance id table (size `buckets`). Zero-weight members get no bucket. The
// result does not depend on the order of `members`.
std::expected<std::vector<std::uint32_t>, WcmpError> build_wcmp_table(
    std::span<const WcmpMember> members, std::uint32_t buckets = kWcmpDefaultBuckets);

// Minimal-movement update of `current` to the quotas of `members`: a bucket keeps its instance
// unless that instance is gone or above its new quota; freed buckets go to instances below
// quota along their preference walks (same walks and pacing as build_wcmp_table). `current` may
// hold ids that are no longer members and zeros; its size fixes the table size (must be prime).
std::expected<std::vector<std::uint32_t>, WcmpError> rebalance_wcmp_table(
    std::span<const std::uint32_t> current, std::span<const WcmpMember> members);

// Fraction of buckets whose instance differs between the two tables (same size required).
std::expected<double, WcmpError> moved_fraction(std::span<const std::uint32_t> old_table,
                                                std::span<const std::uint32_t> new_table);

// Lower bound on moved_fraction for a weight change: total variation distance between the two
// normalised weight distributions (members absent on one side weigh 0 there).
std::expected<double, WcmpError> weight_tv_distance(std::span<const WcmpMember> old_members,
                                                    std::span<const WcmpMember> new_members);

// Buckets per instance id in `table` (ids in ascending order, 0 excluded).
std::vector<std::pair<std::uint32_t, std::uint32_t>> bucket_counts(
    std::span<const std::uint32_t> table);

}  // namespace anychain::dataplane
