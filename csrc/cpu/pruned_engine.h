// Pruned nearest-centre maintenance for k-center greedy and k-means++ (exact).
//
// Algorithm: every unpicked, unlabelled row i keeps D(i), its squared distance to the nearest
// centre, and belongs to that centre's group; a group keeps R = max D of its members and its
// argmax (lowest index on ties). When a centre s arrives:
//   * group c is skipped whole when |s - c|^2 >= 4 R(c) (triangle inequality: no member can
//     get closer to s than to c); |s - c|^2 itself is computed with an early exit at 4 R(c),
//   * in a touched group, row i is skipped when |s - c|^2 >= 4 D(i),
//   * any other row gets its distance to s (dense rows: with an early exit at D(i)) and moves
//     to s's group when it is strictly closer.
// Float safety: the skip tests compare computed values, so they carry the error bound of a
// computed squared distance, |computed - exact| <= rel * exact + slack(i) + slack(j) + abs
// (rel for the difference formula; slack(i) = eta |x_i|^2 for the expanded BADGE formula,
// whose error scales with the norms, not with the distance). A skipped row's computed distance
// is provably >= D(i), so D is bit-identical to the plain pass, which evaluates every row, and
// the picks are exactly those of the plain pass.
// Rows: a policy giving the row representation (cpu/pruned_rows.h: any embedding, with the
// brute-force pass's row distance): load_centre, dist (with
// an early exit at `bound` where that is a proven lower bound, else the full value), norm,
// slack, rel, abs, prefetch.
// The next k-center pick is the argmax over group maxima: O(groups), never O(n).
// Adaptive mode: when an exponential average of the fraction of rows touched per centre stays
// above kSwitchFraction, the member lists are dropped and the next centres run the plain pass
// (which still records each row's nearest centre); after that stretch the lists are rebuilt in
// O(n) and pruning is probed again, each failed probe doubling the next plain stretch.
// Sketch bounds (cpu/sketch_scan.h, common/sketch_bound.h): with a sketch, a row gets a full
// distance only when its projection bound (a first tier of k1 floats, then an optional wider
// tier) fails too; plain passes scan the blocked first tier, the labelled rows become centres
// from a sketch-filtered pass (add_labelled_sketched). Skipped rows' distances are provably
// >= D, so D stays bit-identical to the plain pass's.
// Dormant rows (k-center greedy with a sketch): a row whose D is known to be below a threshold
// T under every later pick's D cannot change a pick, so the labelled pass stops it as soon as
// a centre is closer than T, and no pass maintains it; farthest() wakes rows (finishes their
// D against every centre so far) as the picks' D falls towards them.
// Complexity per centre: O(G d) for centre-centre distances (early exit) plus O(m d) for the m
// rows touched, plus O(members) of the touched groups; memory O(n) plus O(G).
// Shapes: D [n] in Acc (float for float16/bfloat16/float32 pools, double for float64).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/sketch_bound.h"
#include "cpu/dormant_rows.h"
#include "cpu/pruned_rows.h"
#include "cpu/sketch_scan.h"

namespace uwe {
namespace pruned {

enum Mode : int { kPlain = 0, kPruned = 1, kAdaptive = 2 };

constexpr double kSwitchFraction = 0.75;
constexpr int64_t kFirstProbe = 32;  // centres of the first pruned stretch before a switch
constexpr int64_t kProbe = 12;       // centres of a later probe
constexpr int64_t kFirstPlainStretch = 48;
constexpr double kSwitchSmoothing = 1.0 / 8.0;
constexpr int64_t kTaskRows = 1024;
constexpr int64_t kPrefetchRows = 8;
// Below this many row (or centre) evaluations a step runs on one thread: waking a team for a
// few microseconds of work costs more than it saves, and far more on a busy machine.
constexpr int64_t kParallelMin = 4096;
// The sketch scan's task (blocks of kLanes rows) and the pool size from which it uses a team.
constexpr int64_t kScanBlocks = 256;
constexpr int64_t kParallelScanRows = 4 * kParallelMin;
// Bytes of a listed row fetched ahead: group members (early exit rarely reads a whole row) and
// rows the sketch scan listed (its bound failed, so they are mostly read whole).
constexpr int64_t kRowPrefetchBytes = 1024;
constexpr int64_t kScanPrefetchBytes = 2048;
// The sketched labelled pass: rows of its first unit (the probe) and of later units, and the
// fraction of (row, centre) pairs above which the probe hands over to the tile pass (a pair
// evaluated alone costs about three of the tile pass's register-blocked ones).
constexpr int64_t kLabelledProbeRows = 2048;
constexpr int64_t kLabelledUnitRows = 16384;
constexpr double kLabelledMaxFraction = 0.3;
constexpr int64_t kLabelledMaxBytes = int64_t(1) << 28;
// Dormant rows: the threshold's step down when the picks' D falls below it (squared distances;
// each step wakes the rows between, so a small step wakes few rows that never matter).
constexpr double kWakeStep = 0.97;

struct Stats {
  int64_t centres = 0;           // centres added (labelled and picked)
  int64_t rows_touched = 0;      // pool rows whose distance to a new centre was evaluated
  int64_t values_read = 0;       // elements read by those evaluations (early exit counts less)
  int64_t centre_distances = 0;  // centre-centre evaluations of the group test
  int64_t groups_touched = 0;
  int64_t switched_at = -1;      // centre index where adaptive mode first went plain (-1: never)
  int64_t plain_centres = 0;     // centres added by the plain pass
  int64_t labelled_pairs = 0;    // of rows_touched: the labelled set's one-off pass (add_centres)
  int64_t sketch_tests = 0;      // rows whose sketch bound was read before a full distance
  int64_t dormant_rows = 0;      // rows that fell asleep (k-center greedy; a row each time it does)
  int64_t woken_rows = 0;        // rows woken (searched again; a row each time it is)
  int64_t wake_rounds = 0;
};

template <class Rows>
class Engine {
 public:
  using Acc = typename Rows::Acc;

  // sketch: the first tier, read for every row; wide: an optional wider second tier of the
  // same pool, read only for rows the first one does not settle.
  Engine(const Rows& rows, int mode, const SketchView& sketch = SketchView(), const SketchView& wide = SketchView())
      : rows_(rows), sk_(sketch), wide_(sketch.z != nullptr ? wide : SketchView()),
        n_(rows.n()), mode_(mode), D_(n_, std::numeric_limits<Acc>::infinity()), group_of_(n_, 0),
        taken_(n_, 0), centre_(rows.centre_size()), rel_(rows.rel()), abs_(rows.abs()) {
    const int64_t n = n_;
    plain_ = mode == kPlain;
    Group none;
    none.centre = -1;
    none.radius2 = std::numeric_limits<double>::infinity();
    if (!plain_) {
      none.members.resize(n);
      for (int64_t i = 0; i < n; ++i) none.members[i] = i;
    }
    groups_.push_back(std::move(none));
  }

  const Rows& rows() const { return rows_; }
  const std::vector<Acc>& D() const { return D_; }
  const std::vector<uint8_t>& taken() const { return taken_; }
  const Stats& stats() const { return stats_; }
  bool plain() const { return plain_; }
  int64_t untaken() const { return untaken_; }

  // Row s becomes a centre: D = min(D, |row - s|^2) for all rows, D(s) = 0, s never picked.
  void add_centre(int64_t s) {
    const int64_t live_before = untaken_;
    const int64_t touched_before = stats_.rows_touched;
    rows_.load_centre(s, centre_.data());
    scan_argmax_ = -2;
    if (!taken_[s]) --untaken_;
    taken_[s] = 1;
    D_[s] = 0;
    ++stats_.centres;
    if (dormant_.on()) ++holes_;  // a pick leaves the scan's live rows
    if (plain_) {
      plain_pass(s);
      ++stats_.plain_centres;
      if (mode_ == kAdaptive && --plain_left_ == 0) go_pruned();
      return;
    }
    pruned_pass(s);
    if (mode_ != kAdaptive) return;
    const double fraction = live_before > 0
        ? static_cast<double>(stats_.rows_touched - touched_before) / static_cast<double>(live_before) : 0.0;
    touched_average_ = probe_centres_ == 0 ? fraction
        : touched_average_ + kSwitchSmoothing * (fraction - touched_average_);
    ++probe_centres_;
    const int64_t probe = stats_.switched_at < 0 ? kFirstProbe : kProbe;
    if (probe_centres_ >= probe && touched_average_ > kSwitchFraction) go_plain();
  }

  // The labelled rows become centres at once (on an engine with no centres yet), from a pass
  // that found every other row's nearest one: D[i] its squared distance (as the pass computed
  // it), A[i] its position in `centres` (-1: none). `pairs` distances were evaluated.
  void add_centres(const std::vector<int64_t>& centres, const std::vector<Acc>& D, const std::vector<int64_t>& A,
                   int64_t pairs) {
    const int32_t first_id = static_cast<int32_t>(groups_.size());
    scan_argmax_ = -2;
    for (const int64_t c : centres) {
      if (!taken_[c]) --untaken_;
      taken_[c] = 1;
      Group g;
      g.centre = c;
      groups_.push_back(std::move(g));
    }
    for (int64_t i = 0; i < n_; ++i) {
      if (taken_[i]) {
        D_[i] = 0;
        group_of_[i] = -1;
      } else if (A[i] >= 0 && D[i] < D_[i]) {
        D_[i] = D[i];
        group_of_[i] = first_id + static_cast<int32_t>(A[i]);
      }
    }
    stats_.centres += static_cast<int64_t>(centres.size());
    stats_.rows_touched += pairs;
    stats_.labelled_pairs += pairs;
    stats_.values_read += pairs * rows_.width();
    if (!plain_) rebuild_members();
  }

  bool has_sketch() const { return sk_.z != nullptr; }

  // The labelled rows (labelled[i] != 0) become centres (as add_centres) from a pass filtered
  // by the sketch (nearest_in_set per row); D is the brute-force minimum bit for bit. Rows run
  // in units between checkpoints, the first (the probe) spread over the pool; when the units
  // evaluate more than kLabelledMaxFraction of their pairs, the rest runs the brute-force tile
  // pass (cpu::nearest_centres), which is faster there.
  // picks > 0 (k-center greedy, picks still to come) in plain mode: rows may go dormant. The
  // probe's D estimates the last pick's D (its rank among the pool's D is about `picks`); that
  // estimate is the threshold T, and a row stops as soon as its D so far is below T. Such a
  // row can change no pick until the picks' D falls to T (farthest() then wakes it), so
  // neither the pass nor the per-pick passes finish it. Measured on a power-law pool of 50,000 rows, 1,000 picks:
  // 3% of the rows had a D above the last pick's.
  void add_labelled_sketched(const std::vector<uint8_t>& labelled, int64_t picks, Checkpoint& checkpoint) {
    std::vector<int64_t> centres, rows;
    cpu::split_rows(labelled.data(), n_, centres, rows);
    const int64_t m = static_cast<int64_t>(centres.size());
    const int64_t nr = static_cast<int64_t>(rows.size());
    std::vector<Acc> D(static_cast<size_t>(n_), std::numeric_limits<Acc>::infinity());
    std::vector<int64_t> A(static_cast<size_t>(n_), -1);
    if (m * rows_.centre_size() * static_cast<int64_t>(sizeof(Acc)) > kLabelledMaxBytes) {  // too large to pack
      cpu::labelled_init<Acc>(rows_.emb(), labelled.data(), rows_.norms(), D.data(), rows_.workspace(), checkpoint, A);
      add_centres(centres, D, A, nr * m);
      return;
    }
    const CentreSet set(*this, centres);
    const int64_t probe = std::min<int64_t>(nr, kLabelledProbeRows);
    spread_to_front(rows, probe);
    Acc stop_below = -std::numeric_limits<Acc>::infinity();
    int64_t pairs = 0, done = 0, unit_rows = 0, unit_pairs_sum = 0;
    while (done < nr) {
      const int64_t unit = done == 0 ? probe : std::min<int64_t>(nr - done, done == probe ? kLabelledProbeRows : kLabelledUnitRows);
      int64_t unit_pairs = 0;
      search_rows(set, rows.data() + done, unit, stop_below, D.data(), A.data(), unit_pairs);
      pairs += unit_pairs;
      done += unit;
      checkpoint.poll(0);
      // Only in plain mode: a woken row may change group, which group member lists would
      // have to follow.
      if (done == probe && picks > 0 && mode_ == kPlain) {
        const Acc t = dormancy_threshold(D, rows.data(), probe, picks, nr);
        if (t > 0) {  // later units stop early: the probe's fraction says little about them
          dormant_.start(n_, rows_.workspace().full, t);  // queues for any team a later pass has
          stop_below = t;
          continue;
        }
      }
      unit_rows += unit;
      unit_pairs_sum += unit_pairs;
      if (done < nr && static_cast<double>(unit_pairs_sum) > kLabelledMaxFraction * static_cast<double>(unit_rows) * m) {
        cpu::nearest_centres<Acc>(rows_.emb(), rows.data() + done, nr - done, rows_.emb(), centres.data(), m,
                                  rows_.norms(), rows_.norms(), D.data(), A.data(), rows_.workspace(), checkpoint, 0);
        pairs += (nr - done) * m;
        break;
      }
    }
    if (dormant_.on()) {  // every row below T goes dormant, the probe's and the tile pass's too
      for (const int64_t i : rows) {
        if (!(D[i] < dormant_.threshold())) continue;
        dormant_.sleep(i, D[i], 0);
        D[i] = 0;  // not maintained: 0 keeps the row out of every pass and below every pick
      }
      stats_.dormant_rows = dormant_.settle();
    }
    add_centres(centres, D, A, pairs);
  }

  // Next k-center pick, waking dormant rows first where they could matter: the argmax over
  // live rows (its D exact) is the pick when its D reaches T, since every dormant row's
  // brute-force D is at most its bound, below T. Otherwise T drops (by kWakeStep, a step that
  // squares with each further round, never below that D: rows under it cannot beat it) and
  // the rows whose bound reaches it get their exact D (wake); then again.
  int64_t farthest() {
    double step = kWakeStep;
    for (;;) {
      const int64_t i = argmax();
      if (dormant_.count() == 0) return i;
      const bool live = i >= 0 && !dormant_.is(i);
      if (live && D_[i] >= dormant_.threshold()) return i;
      const Acc lowered = static_cast<Acc>(step) * dormant_.threshold();
      wake(live ? std::max(lowered, D_[i]) : lowered);
      step *= step;
    }
  }

  // Next k-center pick: argmax D over untaken rows (lowest index on ties); -1 when none.
  int64_t argmax() const {
    Acc best_d = -1;
    int64_t best_i = -1;
    if (plain_) {
      if (scan_argmax_ != -2) return scan_argmax_;  // found by the sketch scan that just ran
      if (dormant_.on() && scan_built_) {  // the live rows, in no particular order
        for (const int64_t i : live_)
          if (!taken_[i] && (D_[i] > best_d || (D_[i] == best_d && i < best_i))) best_d = D_[i], best_i = i;
        return best_i;
      }
      for (int64_t i = 0; i < n_; ++i)
        if (!taken_[i] && (D_[i] > best_d)) best_d = D_[i], best_i = i;
      return best_i;
    }
    for (const Group& g : groups_) {
      if (g.best_i < 0) continue;
      if (g.best_d > best_d || (g.best_d == best_d && g.best_i < best_i)) best_d = g.best_d, best_i = g.best_i;
    }
    return best_i;
  }

 private:
  struct Group {
    int64_t centre = -1;  // -1: rows that have no centre yet (D = inf)
    std::vector<int64_t> members;
    double radius2 = 0;  // max D + slack over members
    Acc best_d = -1;
    int64_t best_i = -1;
  };

  // Centres of a sketch-filtered nearest-centre search: their rows packed, their first-tier
  // sketch transposed, the wide tier's z, r and slack + tau packed.
  struct CentreSet {
    std::vector<Acc> packed;
    CentreSketch cs;
    std::vector<float> wide_z, wide_r, wide_slack;

    CentreSet(const Engine& e, const std::vector<int64_t>& ids) : cs(e.sk_, {}) {
      packed.reserve(ids.size() * static_cast<size_t>(e.rows_.centre_size()));
      for (const int64_t c : ids) append(e, c);
    }

    void append(const Engine& e, int64_t c) {
      const int64_t cw = e.rows_.centre_size();
      packed.resize(packed.size() + static_cast<size_t>(cw));
      e.rows_.load_centre(c, packed.data() + size() * cw);
      cs.append(e.sk_, c);
      const SketchView& w = e.wide_;
      if (w.z != nullptr) {
        wide_z.insert(wide_z.end(), w.z + c * w.k, w.z + (c + 1) * w.k);
        wide_r.push_back(w.r[c]);
        wide_slack.push_back(w.slack[c] + w.tau);
      }
    }

    int64_t size() const { return cs.size(); }
  };

  // Row i's nearest centre of `set` by brute-force distances (early exit at D), from `best`, a
  // full distance to centre best_j of the set (best_j < 0: none; the centre of smallest bound
  // is evaluated first). Then every centre whose bound (first tier, then wide) fails against
  // the D so far, nearest bound first: that order lowers D soonest, and a lower D settles more
  // of the rest. A skipped centre's distance cannot go below D, so the result is the
  // brute-force minimum bit for bit; unless D goes below stop_below, where the search stops.
  // b, cand: scratch of set.cs.padded() entries.
  Acc nearest_in_set(const CentreSet& set, int64_t i, Acc best, int64_t& best_j, Acc stop_below, float* b,
                     std::pair<float, int32_t>* cand, int64_t& pairs, int64_t& read) const {
    const int64_t cw = rows_.centre_size();
    const int64_t nearest = set.cs.bounds(sk_.z + i * sk_.k, sk_.r[i], b);
    if (best_j < 0) {
      best = rows_.dist(i, set.packed.data() + nearest * cw, std::numeric_limits<Acc>::infinity(), read);
      best_j = nearest;
      ++pairs;
    }
    if (best < stop_below) return best;
    const bool two_tier = wide_.z != nullptr;
    const float scaled = sk_.scale * static_cast<float>(best);
    const float slack_x = sk_.slack[i];
    const int64_t known = best_j;
    int64_t nc = 0;
    for (int64_t j0 = 0; j0 < set.cs.padded(); j0 += kLanes) {
      unsigned need = set.cs.needs_distance(b, j0, scaled, slack_x);
      if (j0 + kLanes > set.size()) need &= (1u << (set.size() - j0)) - 1;
      while (need != 0) {
        const int64_t j = j0 + __builtin_ctz(need);
        need &= need - 1;
        if (j == known) continue;
        float bound = b[j];
        if (two_tier) {
          bound = row_bound(wide_.z + i * wide_.k, wide_.r[i], set.wide_z.data() + j * wide_.k, set.wide_r[j], wide_.k);
          if (sketch_keeps(bound, best, wide_.scale, wide_.slack[i], set.wide_slack[j])) continue;
        }
        cand[nc++] = {bound, static_cast<int32_t>(j)};
      }
    }
    std::sort(cand, cand + nc);
    const SketchView& tier = two_tier ? wide_ : sk_;
    for (int64_t q = 0; q < nc; ++q) {
      const int64_t j = cand[q].second;
      const float centre_slack = two_tier ? set.wide_slack[j] : set.cs.slack(j);
      if (sketch_keeps(cand[q].first, best, tier.scale, tier.slack[i], centre_slack)) continue;
      const Acc v = rows_.dist(i, set.packed.data() + j * cw, best, read);
      ++pairs;
      if (v < best) {
        best = v;
        best_j = j;
        if (best < stop_below) break;
      }
    }
    return best;
  }

  // search(i, b, cand, pairs, read) for `count` listed rows in parallel, each thread with its
  // own nearest_in_set scratch for `set`; returns the full distances counted, `read` the values.
  template <class Search>
  int64_t each_row_in_set(const CentreSet& set, const int64_t* listed, int64_t count, int64_t& read, Search&& search) {
    const int threads = rows_.workspace().threads;
    const int64_t mp = set.cs.padded();
    std::vector<float> bounds(static_cast<size_t>(mp * threads));
    std::vector<std::pair<float, int32_t>> candidates(static_cast<size_t>(mp * threads));
    int64_t found = 0, values = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 32) reduction(+ : found, values) if (count * set.size() >= kParallelMin)
    for (int64_t r = 0; r < count; ++r) {
      const int tid = cpu::thread_id();
      search(listed[r], bounds.data() + mp * tid, candidates.data() + mp * tid, found, values);
    }
    read += values;
    return found;
  }

  // nearest_in_set for `count` listed rows with no centre yet: D[i], and A[i] = the position of
  // its nearest centre in the set.
  void search_rows(const CentreSet& set, const int64_t* listed, int64_t count, Acc stop_below, Acc* D, int64_t* A,
                   int64_t& pairs) {
    int64_t read = 0;  // add_centres counts the pass's values from its pairs
    pairs += each_row_in_set(set, listed, count, read, [&](int64_t i, float* b, std::pair<float, int32_t>* cand,
                                                           int64_t& found, int64_t& values) {
      int64_t j = -1;
      D[i] = nearest_in_set(set, i, std::numeric_limits<Acc>::infinity(), j, stop_below, b, cand, found, values);
      A[i] = j;
    });
  }

  // Moves `count` rows spread evenly over `rows` to its front (the rest keep their order).
  static void spread_to_front(std::vector<int64_t>& rows, int64_t count) {
    const int64_t nr = static_cast<int64_t>(rows.size());
    if (count <= 0 || count >= nr) return;
    std::vector<uint8_t> chosen(static_cast<size_t>(nr), 0);
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(nr));
    for (int64_t q = 0; q < count; ++q) {
      const int64_t at = q * nr / count;
      chosen[at] = 1;
      out.push_back(rows[at]);
    }
    for (int64_t at = 0; at < nr; ++at)
      if (!chosen[at]) out.push_back(rows[at]);
    rows.swap(out);
  }

  // T from the probe's exact D: the value of rank picks * probe / rows from the top (at least
  // the largest); 0 (no dormancy) when every row could be picked.
  static Acc dormancy_threshold(const std::vector<Acc>& D, const int64_t* probe_rows, int64_t probe, int64_t picks,
                                int64_t rows) {
    if (picks >= rows || probe == 0) return 0;
    const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(picks) * probe / rows)));
    if (rank >= probe) return 0;
    std::vector<Acc> d(static_cast<size_t>(probe));
    for (int64_t q = 0; q < probe; ++q) d[q] = D[probe_rows[q]];
    std::nth_element(d.begin(), d.begin() + (rank - 1), d.end(), std::greater<Acc>());
    const Acc t = d[rank - 1];
    return std::isfinite(static_cast<double>(t)) && t > 0 ? t : Acc(0);
  }

  // Dormant rows whose bound reaches t (or the largest bound, when lower) search every centre
  // so far, from their bound (the distance to their recorded centre): until their D is exact,
  // or below the new threshold, where they sleep again with that smaller bound.
  void wake(Acc t) {
    std::vector<int64_t> woken;
    dormant_.wake(t, woken);
    ++stats_.wake_rounds;
    // The centres so far, kept from one round to the next: each round adds the picks since.
    if (!wake_set_) wake_set_ = std::make_unique<CentreSet>(*this, std::vector<int64_t>());
    wake_position_.resize(groups_.size(), -1);
    for (; wake_groups_seen_ < groups_.size(); ++wake_groups_seen_) {
      const int64_t c = groups_[wake_groups_seen_].centre;
      if (c < 0) continue;
      wake_position_[wake_groups_seen_] = wake_set_->size();
      wake_group_.push_back(static_cast<int32_t>(wake_groups_seen_));
      wake_set_->append(*this, c);
    }
    const CentreSet& set = *wake_set_;
    int64_t read = 0;
    const int64_t found = each_row_in_set(set, woken.data(), static_cast<int64_t>(woken.size()), read,
                                          [&](int64_t i, float* b, std::pair<float, int32_t>* cand, int64_t& pairs,
                                              int64_t& values) {
      int64_t j = wake_position_[group_of_[i]];
      const Acc d = nearest_in_set(set, i, dormant_.upper(i), j, dormant_.threshold(), b, cand, pairs, values);
      group_of_[i] = wake_group_[j];
      if (d < dormant_.threshold()) {
        dormant_.sleep(i, d, cpu::thread_id());
        D_[i] = 0;
      } else {
        D_[i] = d;
      }
    });
    stats_.dormant_rows += dormant_.settle();
    stats_.woken_rows += static_cast<int64_t>(woken.size());
    stats_.rows_touched += found;
    stats_.values_read += read;
    scan_argmax_ = -2;
    if (scan_built_) {  // the woken rows join the scan's live rows
      for (const int64_t i : woken) {
        if (dormant_.is(i)) continue;
        live_.push_back(i);
        blocked_.append(sk_, i);
      }
    }
  }

  void go_plain() {
    plain_ = true;
    if (stats_.switched_at < 0) stats_.switched_at = stats_.centres;
    plain_left_ = plain_stretch_;
    plain_stretch_ *= 2;
    for (Group& g : groups_) std::vector<int64_t>().swap(g.members);
  }

  void go_pruned() {
    plain_ = false;
    probe_centres_ = 0;
    rebuild_members();
  }

  // Member lists (in index order) from each row's recorded nearest centre: O(n + groups).
  void rebuild_members() {
    for (Group& g : groups_) std::vector<int64_t>().swap(g.members);
    const int64_t G = static_cast<int64_t>(groups_.size());
    std::vector<int64_t> counts(G, 0);
    for (int64_t i = 0; i < n_; ++i)
      if (!taken_[i]) ++counts[group_of_[i]];
    for (int64_t g = 0; g < G; ++g) groups_[g].members.reserve(counts[g]);
    for (int64_t i = 0; i < n_; ++i)
      if (!taken_[i]) groups_[group_of_[i]].members.push_back(i);
#pragma omp parallel for num_threads(rows_.workspace().threads) schedule(dynamic, 16) if (n_ >= kParallelMin)
    for (int64_t g = 0; g < G; ++g) refresh(groups_[g]);
  }

  // True when a sketch tier proves that row i keeps D(i) against centre s; false without one.
  static bool tier_keeps(const SketchView& t, int64_t i, int64_t s, Acc D) {
    if (t.z == nullptr) return false;
    const float b = row_bound(t.z + i * t.k, t.r[i], t.z + s * t.k, t.r[s], t.k);
    return sketch_keeps(b, D, t.scale, t.slack[i], t.slack[s] + t.tau);
  }
  bool sketch_keeps_row(int64_t i, int64_t s) const {
    return tier_keeps(sk_, i, s, D_[i]) || tier_keeps(wide_, i, s, D_[i]);
  }

  // Every untaken row against centre s; rows that get closer record s's group.
  void plain_pass(int64_t s) {
    const Acc* c = centre_.data();
    const int32_t new_id = static_cast<int32_t>(groups_.size());
    group_of_[s] = -1;
    int64_t touched = 0, read = 0, tests = 0;
    if (sk_.z != nullptr) {
      sketch_scan(s, new_id, touched, read, tests);
    } else {
#pragma omp parallel for num_threads(rows_.workspace().threads) schedule(static, 4096) reduction(+ : touched, read) if (n_ >= kParallelMin)
      for (int64_t i = 0; i < n_; ++i) {
        if (taken_[i]) continue;
        const Acc v = rows_.dist(i, c, D_[i], read);
        ++touched;
        if (v < D_[i]) {
          D_[i] = v;
          group_of_[i] = new_id;
        }
      }
    }
    stats_.rows_touched += touched;
    stats_.values_read += read;
    stats_.sketch_tests += tests;
    Group fresh;
    fresh.centre = s;
    groups_.push_back(std::move(fresh));
  }

  // Full distances of m listed rows to centre c, each row fetched kPrefetchRows ahead (listed
  // rows are scattered over the pool); a row the centre comes closer to joins group new_id.
  // A row whose D falls below the dormancy threshold goes dormant (no pick can need it before
  // a wake): queued by its thread, settled after the pass (fell_asleep).
  void relax_listed(const int64_t* listed, int64_t m, const Acc* c, int32_t new_id, int64_t prefetch_bytes,
                    int64_t& read) {
    for (int64_t k = 0; k < std::min<int64_t>(m, kPrefetchRows); ++k) rows_.prefetch(listed[k], prefetch_bytes);
    for (int64_t k = 0; k < m; ++k) {
      if (k + kPrefetchRows < m) rows_.prefetch(listed[k + kPrefetchRows], prefetch_bytes);
      const int64_t i = listed[k];
      const Acc v = rows_.dist(i, c, D_[i], read);
      if (v < D_[i]) {
        group_of_[i] = new_id;
        if (dormant_.on() && v < dormant_.threshold()) {
          dormant_.sleep(i, v, cpu::thread_id());
          D_[i] = 0;
        } else {
          D_[i] = v;
        }
      }
    }
  }

  // The plain pass with a sketch: the blocked scan (cpu/sketch_scan.h) lists the rows whose
  // bound fails, then those get their full distance, a few rows fetched ahead. Tasks of
  // kScanBlocks blocks; the scan reads k + 3 floats a row, so the pool's rows are touched only
  // for the listed ones.
  void sketch_scan(int64_t s, int32_t new_id, int64_t& touched, int64_t& read, int64_t& tests) {
    const Acc* c = centre_.data();
    const float* zc = sk_.z + s * sk_.k;
    const float rc = sk_.r[s];
    const FV centre_slack = FV{} + (sk_.slack[s] + sk_.tau);
    prepare_scan();
    const int64_t* list = dormant_.on() ? live_.data() : nullptr;  // row at scan position p: list[p], or p
    const int64_t count = dormant_.on() ? static_cast<int64_t>(live_.size()) : n_;
    const int64_t blocks = blocked_.blocks();
    const int64_t n_tasks = (blocks + kScanBlocks - 1) / kScanBlocks;
    int64_t t_touched = 0, t_read = 0;
    // Each task's argmax of D over untaken rows (as argmax() finds it), while its rows are in cache.
    std::vector<Acc> task_best(static_cast<size_t>(n_tasks));
    std::vector<int64_t> task_arg(static_cast<size_t>(n_tasks));
#pragma omp parallel for num_threads(rows_.workspace().threads) schedule(dynamic, 1) reduction(+ : t_touched, t_read) if (count >= kParallelScanRows)
    for (int64_t task = 0; task < n_tasks; ++task) {
      int64_t listed[kScanBlocks * kLanes];
      int64_t m = 0;
      const int64_t b_end = std::min(blocks, (task + 1) * kScanBlocks);
      for (int64_t b = task * kScanBlocks; b < b_end; ++b) {
        unsigned need = blocked_.needs_distance(b, zc, rc, scaled_lanes(D_.data(), list, b * kLanes, count, sk_.scale),
                                                centre_slack);
        while (need != 0) {
          const int64_t p = b * kLanes + __builtin_ctz(need);
          need &= need - 1;
          if (p >= count) continue;
          const int64_t i = list != nullptr ? list[p] : p;
          if (D_[i] > 0) listed[m++] = i;  // D = 0: taken, or a copy of a centre
        }
      }
      if (wide_.z != nullptr) m = wide_filter(listed, m, s);
      // Listed rows are mostly read whole (the bound already failed): fetch whole rows ahead.
      relax_listed(listed, m, c, new_id, kScanPrefetchBytes, t_read);
      t_touched += m;
      Acc best = -1;
      int64_t arg = -1;
      for (int64_t p = task * kScanBlocks * kLanes, end = std::min(count, b_end * kLanes); p < end; ++p) {
        const int64_t i = list != nullptr ? list[p] : p;  // live rows are in no particular order
        if (!taken_[i] && (D_[i] > best || (D_[i] == best && i < arg))) best = D_[i], arg = i;
      }
      task_best[task] = best;
      task_arg[task] = arg;
    }
    touched += t_touched;
    read += t_read;
    fell_asleep();
    tests += dormant_.on() ? count : untaken_;
    Acc best = -1;
    scan_argmax_ = -1;
    for (int64_t task = 0; task < n_tasks; ++task)
      if (task_arg[task] >= 0 && (task_best[task] > best || (task_best[task] == best && task_arg[task] < scan_argmax_)))
        best = task_best[task], scan_argmax_ = task_arg[task];
  }

  // Rows that went dormant in a per-pick pass join the others.
  void fell_asleep() {
    if (!dormant_.on()) return;
    const int64_t count = dormant_.settle();
    stats_.dormant_rows += count;
    holes_ += count;
  }

  // The rows the per-pick scan reads, blocked: every row, or (with dormant rows) the live ones,
  // in no particular order (argmax breaks ties by index), so that woken rows are appended and
  // dormant rows cost nothing; taken and dormant rows leave (holes) once they are half of it.
  void prepare_scan() {
    if (scan_built_ && !(dormant_.on() && 2 * holes_ > static_cast<int64_t>(live_.size()))) return;
    if (dormant_.on()) {
      if (!scan_built_) {
        for (int64_t i = 0; i < n_; ++i)
          if (!taken_[i] && !dormant_.is(i)) live_.push_back(i);
      } else {
        live_.erase(std::remove_if(live_.begin(), live_.end(), [&](int64_t i) { return taken_[i] || dormant_.is(i); }),
                    live_.end());
      }
      blocked_ = BlockedSketch(sk_, live_.data(), static_cast<int64_t>(live_.size()));
    } else {
      blocked_ = BlockedSketch(sk_, nullptr, n_);
    }
    scan_built_ = true;
    holes_ = 0;
  }

  // The listed rows the wide tier does not settle against centre s, in order (their sketch
  // rows, r and slack fetched a few ahead: they are scattered); returns their count.
  int64_t wide_filter(int64_t* listed, int64_t m, int64_t s) const {
    const int64_t k = wide_.k;
    auto fetch = [&](int64_t i) {
      const char* p = reinterpret_cast<const char*>(wide_.z + i * k);
      for (int64_t b = 0; b < k * static_cast<int64_t>(sizeof(float)); b += 64) __builtin_prefetch(p + b, 0, 1);
      __builtin_prefetch(wide_.r + i, 0, 1);
      __builtin_prefetch(wide_.slack + i, 0, 1);
    };
    for (int64_t j = 0; j < std::min<int64_t>(m, kPrefetchRows); ++j) fetch(listed[j]);
    int64_t kept = 0;
    for (int64_t j = 0; j < m; ++j) {
      if (j + kPrefetchRows < m) fetch(listed[j + kPrefetchRows]);
      const int64_t i = listed[j];
      if (!tier_keeps(wide_, i, s, D_[i])) listed[kept++] = i;
    }
    return kept;
  }

  void pruned_pass(int64_t s) {
    const int32_t old_group = group_of_[s];
    group_of_[s] = -1;
    const int64_t G = static_cast<int64_t>(groups_.size());
    const int32_t new_id = static_cast<int32_t>(G);
    const Acc* c = centre_.data();
    const double inf = std::numeric_limits<double>::infinity();

    // 1. Which groups can change, and |s - c|^2 (or a lower bound of it) for those that can.
    const double slack_s = rows_.slack(s);
    std::vector<double> centre_d2(G, inf), centre_slack(G, 0.0);
    std::vector<uint8_t> touch(G, 0);
    int64_t read = 0, evaluated = 0;
#pragma omp parallel for num_threads(rows_.workspace().threads) schedule(dynamic, 8) reduction(+ : read, evaluated) if (G * rows_.width() >= kParallelMin * 16)
    for (int64_t g = 0; g < G; ++g) {
      const Group& grp = groups_[g];
      if (grp.members.empty()) continue;
      if (grp.centre < 0) {
        touch[g] = 1;
        continue;
      }
      // The group cannot change when its radius (max of D + slack) is within the row
      // threshold of step 2, i.e. when |s - c|^2 reaches group_bound.
      const double slack_c = rows_.slack(grp.centre);
      const double group_bound = 4.0 * (grp.radius2 + std::max(slack_s, slack_c) + abs_) * (1.0 + rel_) / (1.0 - rel_) +
                                 slack_s + slack_c + abs_;
      const bool forced = g == old_group;
      const Acc bound = forced ? std::numeric_limits<Acc>::infinity() : static_cast<Acc>(group_bound);
      const Acc v = rows_.dist(grp.centre, c, bound, read);
      ++evaluated;
      centre_d2[g] = static_cast<double>(v);
      centre_slack[g] = slack_c;
      touch[g] = forced || !(static_cast<double>(v) >= group_bound);
    }
    stats_.values_read += read;
    stats_.centre_distances += evaluated;
    stats_.rows_touched += evaluated;

    // 2. Rows of touched groups, in tasks of kTaskRows members.
    std::vector<std::pair<int64_t, int64_t>> tasks;  // (group, first member)
    std::vector<int64_t> touched_groups;
    int64_t candidates = 0;
    for (int64_t g = 0; g < G; ++g) {
      if (!touch[g]) continue;
      touched_groups.push_back(g);
      const int64_t m = static_cast<int64_t>(groups_[g].members.size());
      candidates += m;
      for (int64_t b = 0; b < m; b += kTaskRows) tasks.emplace_back(g, b);
    }
    stats_.groups_touched += static_cast<int64_t>(touched_groups.size());
    const int64_t n_tasks = static_cast<int64_t>(tasks.size());
    int64_t touched = 0, tests = 0;
    read = 0;
#pragma omp parallel for num_threads(rows_.workspace().threads) schedule(dynamic, 1) reduction(+ : touched, read, tests) if (candidates >= kParallelMin)
    for (int64_t t = 0; t < n_tasks; ++t) {
      const Group& grp = groups_[tasks[t].first];
      const bool no_centre = grp.centre < 0;
      // Row i cannot change when D(i) + slack(i) <= skip_below: then the exact |x_i - c| is at
      // most half a lower bound of the exact |s - c|, with room for every rounding error.
      const double slack_c = centre_slack[tasks[t].first];
      const double skip_below = no_centre ? -1.0
          : (1.0 - rel_) * (centre_d2[tasks[t].first] - slack_s - slack_c - abs_) / (4.0 * (1.0 + rel_)) -
            std::max(slack_s, slack_c) - abs_;
      const int64_t end = std::min<int64_t>(tasks[t].second + kTaskRows, grp.members.size());
      int64_t candidates_here[kTaskRows];
      int64_t m = 0;
      for (int64_t k = tasks[t].second; k < end; ++k) {
        const int64_t i = grp.members[k];
        if (taken_[i] || static_cast<double>(D_[i]) + rows_.slack(i) <= skip_below) continue;
        if (sk_.z != nullptr) {
          ++tests;
          if (sketch_keeps_row(i, s)) continue;
        }
        candidates_here[m++] = i;
      }
      // Rows of a group are scattered over the pool: fetch a few rows ahead.
      relax_listed(candidates_here, m, c, new_id, kRowPrefetchBytes, read);
      touched += m;
    }
    stats_.rows_touched += touched;
    stats_.values_read += read;
    stats_.sketch_tests += tests;
    fell_asleep();

    // 3. Touched groups drop rows that left; the rows that moved form s's group.
    const int64_t n_touched = static_cast<int64_t>(touched_groups.size());
    std::vector<std::vector<int64_t>> moved(n_touched);
#pragma omp parallel for num_threads(rows_.workspace().threads) schedule(dynamic, 1) if (candidates >= 16 * kParallelMin && n_touched > 1)
    for (int64_t k = 0; k < n_touched; ++k) {
      const int64_t g = touched_groups[k];
      Group& grp = groups_[g];
      size_t kept = 0;
      for (size_t j = 0; j < grp.members.size(); ++j) {
        const int64_t i = grp.members[j];
        const int32_t now = group_of_[i];
        if (now == static_cast<int32_t>(g)) {
          grp.members[kept++] = i;
        } else if (now == new_id) {
          moved[k].push_back(i);
        }
      }
      grp.members.resize(kept);
      if (kept == 0) std::vector<int64_t>().swap(grp.members);
      refresh(grp);
    }
    Group fresh;
    fresh.centre = s;
    size_t total = 0;
    for (const auto& v : moved) total += v.size();
    fresh.members.reserve(total);
    for (const auto& v : moved) fresh.members.insert(fresh.members.end(), v.begin(), v.end());
    // Index order keeps later passes over this group close to a forward stream.
    std::sort(fresh.members.begin(), fresh.members.end());
    refresh(fresh);
    groups_.push_back(std::move(fresh));
  }

  // Radius (max D + slack) and argmax of D (lowest index on ties) of a group from its members.
  void refresh(Group& grp) const {
    double r = 0;
    Acc best_d = -1;
    int64_t best_i = -1;
    for (const int64_t i : grp.members) {
      const Acc v = D_[i];
      r = std::max(r, static_cast<double>(v) + rows_.slack(i));
      if (v > best_d || (v == best_d && i < best_i)) best_d = v, best_i = i;
    }
    grp.radius2 = grp.centre < 0 ? std::numeric_limits<double>::infinity() : r;
    grp.best_d = best_d;
    grp.best_i = best_i;
  }

  const Rows& rows_;
  SketchView sk_;
  SketchView wide_;
  BlockedSketch blocked_;   // built by prepare_scan
  bool scan_built_ = false;
  std::vector<int64_t> live_;  // with dormant rows: the scan's rows (live when added)
  int64_t holes_ = 0;          // live_ rows taken or gone dormant since it was built
  int64_t n_;
  int mode_;
  std::vector<Acc> D_;
  std::vector<int32_t> group_of_;
  std::vector<uint8_t> taken_;
  std::vector<Acc> centre_;
  double rel_, abs_;
  bool plain_ = false;
  int64_t scan_argmax_ = -2;  // the argmax the last sketch scan found (-2: none since D changed)
  int64_t untaken_ = n_;
  double touched_average_ = 0;
  int64_t probe_centres_ = 0;
  int64_t plain_left_ = 0;
  int64_t plain_stretch_ = kFirstPlainStretch;
  // k-center greedy's dormant rows (add_labelled_sketched; D = 0 while dormant), and the
  // centres wake() searches, with each one's group and each group's position among them.
  DormantRows<Acc> dormant_;
  std::unique_ptr<CentreSet> wake_set_;
  std::vector<int32_t> wake_group_;
  std::vector<int64_t> wake_position_;
  size_t wake_groups_seen_ = 0;
  std::vector<Group> groups_;
  Stats stats_;
};

}  // namespace pruned
}  // namespace uwe
