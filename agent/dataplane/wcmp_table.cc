#include "dataplane/wcmp_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>
#include <unordered_map>

namespace anychain::dataplane {
namespace {

std::unexpected<WcmpError> fail(WcmpErrc code, std::string msg) {
  return std::unexpected(WcmpError{code, std::move(msg)});
}

// 64-bit finaliser (xor-shift-multiply); good avalanche, fixed so that tables are stable
// across builds and hosts.
std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr std::uint64_t kSeedOffset = 0x6163686e6f666673ULL;  // "achnoffs"
constexpr std::uint64_t kSeedSkip = 0x616368736b697031ULL;    // "achskip1"

// An instance's preference walk over the buckets: position j -> (offset + j*skip) mod M.
struct Walk {
  std::uint32_t offset;
  std::uint32_t skip;  // 1..M-1
};

Walk walk_of(std::uint32_t id, std::uint32_t m) {
  const std::uint64_t h1 = mix64(static_cast<std::uint64_t>(id) ^ kSeedOffset);
  const std::uint64_t h2 = mix64((static_cast<std::uint64_t>(id) << 32) ^ kSeedSkip ^ h1);
  Walk w;
  w.offset = static_cast<std::uint32_t>(h1 % m);
  w.skip = m > 1 ? static_cast<std::uint32_t>(h2 % (m - 1)) + 1 : 1;
  return w;
}

std::uint32_t walk_bucket(const Walk& w, std::uint64_t j, std::uint32_t m) {
  return static_cast<std::uint32_t>((w.offset + j * w.skip) % m);
}

std::uint64_t pow_mod(std::uint64_t b, std::uint64_t e, std::uint64_t m) {
  std::uint64_t r = 1 % m;
  b %= m;
  while (e > 0) {
    if (e & 1) r = r * b % m;
    b = b * b % m;
    e >>= 1;
  }
  return r;
}

// Position of bucket b on walk w (inverse of walk_bucket); m prime.
std::uint64_t walk_position(const Walk& w, std::uint32_t b, std::uint32_t m) {
  const std::uint64_t inv_skip = pow_mod(w.skip, m - 2, m);
  const std::uint64_t diff = (static_cast<std::uint64_t>(b) + m - w.offset) % m;
  return diff * inv_skip % m;
}

// Members validated and sorted by id, with their quotas.
struct Plan {
  std::vector<WcmpMember> members;  // sorted by id
  std::vector<std::uint32_t> quota;  // parallel to members
};

std::expected<std::vector<WcmpMember>, WcmpError> validated(std::span<const WcmpMember> in) {
  if (in.empty()) {
    return fail(WcmpErrc::kEmpty, "WCMP: no instances given; a service table needs at least one "
                                  "instance with a positive weight");
  }
  std::vector<WcmpMember> v(in.begin(), in.end());
  for (const auto& m : v) {
    if (m.instance_id == 0) {
      return fail(WcmpErrc::kBadInstanceId,
                  "WCMP: instance id 0 is reserved for an empty bucket");
    }
    if (!std::isfinite(m.weight) || m.weight < 0.0) {
      return fail(WcmpErrc::kBadWeight, fmt::format("WCMP: instance {} has weight {}; weights must be finite and >= 0",
                                                        m.instance_id, m.weight));
    }
  }
  std::ranges::sort(v, {}, &WcmpMember::instance_id);
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i].instance_id == v[i - 1].instance_id) {
      return fail(WcmpErrc::kDuplicateInstance,
                  fmt::format("WCMP: instance {} listed twice", v[i].instance_id));
    }
  }
  const bool any_positive = std::ranges::any_of(v, [](const auto& m) { return m.weight > 0.0; });
  if (!any_positive) {
    return fail(WcmpErrc::kAllZeroWeight,
                fmt::format("WCMP: all {} instance(s) have weight 0; nothing can be served", v.size()));
  }
  return v;
}

std::expected<void, WcmpError> check_size(std::uint32_t buckets) {
  if (!is_prime(buckets)) {
    return fail(WcmpErrc::kBadTableSize,
                fmt::format("WCMP: table size {} is not prime (the preference walks need a prime size to "
                            "visit every bucket)",
                            buckets));
  }
  return {};
}

// Quotas for members already validated and sorted by id.
std::vector<std::uint32_t> apportion(const std::vector<WcmpMember>& v, std::uint32_t m) {
  long double total = 0;
  for (const auto& x : v) total += x.weight;
  std::vector<std::uint32_t> q(v.size(), 0);
  std::vector<long double> rem(v.size(), 0);
  std::uint64_t assigned = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const long double exact = static_cast<long double>(m) * v[i].weight / total;
    const long double fl = std::floor(exact);
    q[i] = static_cast<std::uint32_t>(std::min<long double>(fl, m));
    rem[i] = exact - fl;
    assigned += q[i];
  }
  std::vector<std::size_t> order(v.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Largest remainder first; ties by lower instance id (v is sorted, so by index).
  std::ranges::stable_sort(order, [&](std::size_t a, std::size_t b) { return rem[a] > rem[b]; });
  // Rounding of long double could in principle leave the floors summing above m; take back
  // from the smallest remainders then (never happens with sane weights, but stay exact).
  for (auto it = order.rbegin(); assigned > m && it != order.rend(); ++it) {
    if (q[*it] > 0) {
      --q[*it];
      --assigned;
    }
  }
  for (std::size_t k = 0; assigned < m; k = (k + 1) % order.size()) {
    if (v[order[k]].weight > 0.0) {
      ++q[order[k]];
      ++assigned;
    }
  }
  return q;
}

// Fills the free (0) buckets of `table`: member i takes picks until held[i] == quota[i], in
// virtual-time order (k-th pick of a quota-q member at (2k+1)/(2q)), walking its preference list.
void fill_free(std::vector<std::uint32_t>& table, const Plan& plan,
               std::vector<std::uint32_t> held) {
  const auto m = static_cast<std::uint32_t>(table.size());
  struct Turn {
    std::uint64_t num;  // 2k+1
    std::uint64_t den;  // 2q
    std::uint32_t id;
    std::size_t idx;
  };
  auto later = [](const Turn& a, const Turn& b) {
    const std::uint64_t l = a.num * b.den;
    const std::uint64_t r = b.num * a.den;
    if (l != r) return l > r;
    return a.id > b.id;
  };
  std::priority_queue<Turn, std::vector<Turn>, decltype(later)> pq(later);
  std::vector<Walk> walks(plan.members.size());
  std::vector<std::uint64_t> next(plan.members.size(), 0);
  for (std::size_t i = 0; i < plan.members.size(); ++i) {
    walks[i] = walk_of(plan.members[i].instance_id, m);
    if (held[i] < plan.quota[i]) {
      pq.push(Turn{2ULL * held[i] + 1, 2ULL * plan.quota[i], plan.members[i].instance_id, i});
    }
  }
  while (!pq.empty()) {
    const Turn t = pq.top();
    pq.pop();
    const std::size_t i = t.idx;
    // A free bucket exists: sum(quota) == m and this member is below its quota. Its walk is a
    // permutation of all m buckets, so it finds one within m steps.
    std::uint32_t b = walk_bucket(walks[i], next[i], m);
    while (table[b] != 0) {
      ++next[i];
      b = walk_bucket(walks[i], next[i], m);
    }
    table[b] = plan.members[i].instance_id;
    ++next[i];
    ++held[i];
    if (held[i] < plan.quota[i]) {
      pq.push(Turn{2ULL * held[i] + 1, 2ULL * plan.quota[i], t.id, i});
    }
  }
}

std::expected<Plan, WcmpError> plan_for(std::span<const WcmpMember> members,
                                        std::uint32_t buckets) {
  if (auto ok = check_size(buckets); !ok) return std::unexpected(ok.error());
  auto v = validated(members);
  if (!v) return std::unexpected(v.error());
  Plan p;
  p.quota = apportion(*v, buckets);
  p.members = std::move(*v);
  return p;
}

}  // namespace

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

std::expected<std::vector<std::uint32_t>, WcmpError> wcmp_quotas(
    std::span<const WcmpMember> members, std::uint32_t buckets) {
  auto plan = plan_for(members, buckets);
  if (!plan) return std::unexpected(plan.error());
  std::unordered_map<std::uint32_t, std::uint32_t> by_id;
  for (std::size_t i = 0; i < plan->members.size(); ++i) {
    by_id[plan->members[i].instance_id] = plan->quota[i];
  }
  std::vector<std::uint32_t> out;
  out.reserve(members.size());
  for (const auto& m : members) out.push_back(by_id.at(m.instance_id));
  return out;
}

std::expected<std::vector<std::uint32_t>, WcmpError> build_wcmp_table(
    std::span<const WcmpMember> members, std::uint32_t buckets) {
  auto plan = plan_for(members, buckets);
  if (!plan) return std::unexpected(plan.error());
  std::vector<std::uint32_t> table(buckets, 0);
  fill_free(table, *plan, std::vector<std::uint32_t>(plan->members.size(), 0));
  return table;
}

std::expected<std::vector<std::uint32_t>, WcmpError> rebalance_wcmp_table(
    std::span<const std::uint32_t> current, std::span<const WcmpMember> members) {
  if (current.size() > UINT32_MAX) {
    return fail(WcmpErrc::kBadTableSize, "WCMP: table too large");
  }
  const auto m = static_cast<std::uint32_t>(current.size());
  auto plan = plan_for(members, m);
  if (!plan) return std::unexpected(plan.error());

  std::unordered_map<std::uint32_t, std::size_t> idx;
  for (std::size_t i = 0; i < plan->members.size(); ++i) idx[plan->members[i].instance_id] = i;

  // Buckets each member holds now.
  std::vector<std::vector<std::uint32_t>> owned(plan->members.size());
  for (std::uint32_t b = 0; b < m; ++b) {
    auto it = idx.find(current[b]);
    if (it != idx.end()) owned[it->second].push_back(b);
  }
  std::vector<std::uint32_t> table(m, 0);
  std::vector<std::uint32_t> held(plan->members.size(), 0);
  for (std::size_t i = 0; i < plan->members.size(); ++i) {
    auto& mine = owned[i];
    if (mine.size() > plan->quota[i]) {
      // Over quota: keep the buckets earliest on its own walk (the ones a fresh build would
      // most likely give it), release the rest.
      const Walk w = walk_of(plan->members[i].instance_id, m);
      std::ranges::sort(mine, {}, [&](std::uint32_t b) { return walk_position(w, b, m); });
      mine.resize(plan->quota[i]);
    }
    for (std::uint32_t b : mine) table[b] = plan->members[i].instance_id;
    held[i] = static_cast<std::uint32_t>(mine.size());
  }
  fill_free(table, *plan, std::move(held));
  return table;
}

std::expected<double, WcmpError> moved_fraction(std::span<const std::uint32_t> old_table,
                                                std::span<const std::uint32_t> new_table) {
  if (old_table.size() != new_table.size()) {
    return fail(WcmpErrc::kTableSizeMismatch,
                fmt::format("WCMP: cannot compare tables of {} and {} buckets", old_table.size(), new_table.size()));
  }
  if (old_table.empty()) {
    return fail(WcmpErrc::kBadTableSize, "WCMP: cannot compare empty tables");
  }
  std::size_t moved = 0;
  for (std::size_t i = 0; i < old_table.size(); ++i) moved += old_table[i] != new_table[i];
  return static_cast<double>(moved) / static_cast<double>(old_table.size());
}

std::expected<double, WcmpError> weight_tv_distance(std::span<const WcmpMember> old_members,
                                                    std::span<const WcmpMember> new_members) {
  auto a = validated(old_members);
  if (!a) return std::unexpected(a.error());
  auto b = validated(new_members);
  if (!b) return std::unexpected(b.error());
  auto total = [](const std::vector<WcmpMember>& v) {
    long double t = 0;
    for (const auto& x : v) t += x.weight;
    return t;
  };
  const long double ta = total(*a), tb = total(*b);
  std::map<std::uint32_t, std::pair<long double, long double>> p;
  for (const auto& x : *a) p[x.instance_id].first = x.weight / ta;
  for (const auto& x : *b) p[x.instance_id].second = x.weight / tb;
  long double d = 0;
  for (const auto& [id, pq] : p) d += std::fabs(pq.first - pq.second);
  return static_cast<double>(d / 2);
}

std::vector<std::pair<std::uint32_t, std::uint32_t>> bucket_counts(
    std::span<const std::uint32_t> table) {
  std::map<std::uint32_t, std::uint32_t> c;
  for (std::uint32_t id : table) {
    if (id != 0) ++c[id];
  }
  return {c.begin(), c.end()};
}

}  // namespace anychain::dataplane
