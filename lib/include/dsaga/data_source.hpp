// A data set as a user names it in a configuration, loaded as the shard this process holds.
//
// load_data runs the whole pipeline in a fixed order, so every agent of a run that is given the
// same DataSpec (except `shard`) holds one piece of the same global data set:
//   read (format) -> keep the first `limit` rows -> scale -> normalize_rows -> bias
//   -> partition into `shards` on the raw labels -> prepare_labels(objective, positive) on the
//   whole data set (one label mapping for every shard) -> keep shard `shard` -> validate.
// With shards = 1 the data set is kept whole, in file order (no permutation).
// Partitioning on the raw labels makes by-label shards follow the original classes (shard 0 of
// Fashion-MNIST by label starts with class 0), whatever the loss maps them to.
//
// Errors name the configuration key at fault ("data.shard: 8 is not in 0..7"; the keys of the
// [data] table, see config.hpp), or come from the reader with the file and line or byte offset,
// or from prepare_labels (the file and its row) or validate (the shard and its row).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/io.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

// Where the Debian package dataset-fashion-mnist installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct DataSpec {
  std::string format = "auto";  // "libsvm", "csv", "idx", "fashion-mnist"; "auto" picks by
                                // the path's extension (.csv -> csv, .svm/.libsvm/.txt ->
                                // libsvm, each optionally followed by .gz; else an error)
  std::string path;             // libsvm/csv: the file; idx: the images file;
                                // fashion-mnist: the directory (empty = kFashionMnistDir)
  std::string labels_path;      // idx only
  std::string split = "train";  // fashion-mnist: "train" or "test" (t10k files)
  ReadOptions read;
  Index limit = 0;               // keep the first `limit` rows (0 = all), before partitioning
  double scale = 1.0;            // multiply every feature (pixels/255: 1.0/255)
  bool normalize_rows = false;   // after scaling
  bool bias = false;             // append a constant 1 feature, after normalisation
  std::vector<double> positive;  // logistic: raw labels that become +1 (see prepare_labels)
  int first_class = 0;           // multinomial: labels are first_class..first_class+C-1 (0 or 1)
  int shards = 1;                // K, 1..rows (after `limit`): no shard may be empty
  int shard = 0;                 // which one this process holds, 0..K-1
  PartitionKind partition = PartitionKind::iid;
  double dirichlet_alpha = 0.0;  // partition = dirichlet: its concentration (> 0), see dataset.hpp
  std::uint64_t seed = 0;        // iid permutation and dirichlet draws seed
};

// Reads, limits, transforms, partitions on the *raw* labels (so by_label sorts by original
// class) and keeps shard `shard`, then prepare_labels + validate for `objective`. The source
// field of the result says what it is ("fashion-mnist/train [shard 3/8, by-label]"; shards are
// numbered from 0 as in `shard`).
Result<Dataset> load_data(const DataSpec& spec, const Objective& objective);

// Whether the data's missing features are zeros (LIBSVM), so that it may be widened to a wider
// model (dataset.hpp widen); false for a spec whose format does not resolve.
bool missing_features_are_zeros(const DataSpec& spec);

// An agent's held-out validation rows (validation.hpp), which it never trains on: a file of its
// own, or a seeded fraction of the rows load_data gave it. The TOML table [validation] of
// config/agent.toml; the options --validation, --validation-labels, --holdout, --holdout-seed
// and --eval-every.
struct ValidationSpec {
  // A file read with the training DataSpec's options (format, transforms, label mapping,
  // features, storage) and cut into the same shards (shards, shard, partition, seed: each row of
  // a file the agents share is evaluated by one agent); `limit` is not applied. idx: the images
  // file; fashion-mnist: the directory whose test split (t10k files) is read.
  std::string path;
  std::string labels_path;       // idx only: the labels file
  double holdout = 0.0;          // a fraction in (0, 1) of the loaded rows instead (0 = none)
  std::uint64_t holdout_seed = 0;
  std::uint64_t eval_every = 1;  // evaluate every this many rounds (>= 1)
  bool enabled() const { return !path.empty() || holdout > 0; }
};

// The validation file of `spec` for a training set `train` loaded with `data` (width and labels
// checked against it: a LIBSVM file may be narrower, its missing columns are zero). Errors name
// "validation.path" and the file.
Result<Dataset> load_validation(const DataSpec& data, const ValidationSpec& spec,
                                const Objective& objective, const Dataset& train);

// Splits `data` into training rows and round(fraction * n) held-out rows drawn by a seeded
// shuffle (Rng(seed), the same rows on every platform); both keep file order. Errors name
// "validation.holdout" when a part would be empty or the fraction is outside (0, 1).
struct HeldOut {
  Dataset train;
  Dataset validation;
};
Result<HeldOut> hold_out(const Dataset& data, double fraction, std::uint64_t seed);

// "iid", "by-label" (also accepted: "by_label") or "dirichlet:ALPHA" (ALPHA a finite number > 0,
// e.g. "dirichlet:0.3"; stored in *alpha when alpha is given). The error quotes the name and
// lists the choices.
Result<PartitionKind> parse_partition(const std::string& name, double* alpha = nullptr);
const char* to_string(PartitionKind kind);  // "iid", "by-label", "dirichlet"
// What parse_partition reads back: to_string(kind), or "dirichlet:ALPHA" (ALPHA as %g).
std::string partition_name(PartitionKind kind, double alpha);

}  // namespace dsaga
