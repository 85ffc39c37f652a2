// load_data: from a DataSpec to the shard this process holds (pipeline order in data_source.hpp).
#include "dsaga/data_source.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string_view>
#include <utility>

#include "dsaga/rng.hpp"

namespace dsaga {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// The reader for `spec`: the explicit format, or for "auto" the one the extension names.
Result<std::string> resolve_format(const DataSpec& spec) {
  static constexpr const char* kFormats[] = {"libsvm", "csv", "idx", "fashion-mnist"};
  if (spec.format != "auto") {
    for (const char* f : kFormats) {
      if (spec.format == f) return std::string(f);
    }
    return Result<std::string>::failure("data.format: '" + spec.format +
                                        "' is not a format (expected auto, libsvm, csv, idx or "
                                        "fashion-mnist)");
  }
  if (spec.path.empty()) {
    return Result<std::string>::failure(
        "data.path: empty; name the data file (or set data.format = \"fashion-mnist\")");
  }
  std::string name = lower(std::filesystem::path(spec.path).filename().string());
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);  // the readers gunzip themselves
  if (ends_with(name, ".csv")) return std::string("csv");
  if (ends_with(name, ".svm") || ends_with(name, ".libsvm") || ends_with(name, ".txt")) {
    return std::string("libsvm");
  }
  return Result<std::string>::failure(
      "data.format: auto cannot tell the format of '" + spec.path +
      "' from its extension (.csv, .svm, .libsvm or .txt, optionally .gz); set data.format");
}

// `base`.gz when it exists or `base` does not (the error then names the packaged name).
std::string gz_or_plain(const std::string& base) {
  std::error_code ec;
  if (std::filesystem::exists(base + ".gz", ec) || !std::filesystem::exists(base, ec)) {
    return base + ".gz";
  }
  return base;
}

// Reads the whole data set; `label` receives its short name for Dataset::source.
Result<Dataset> read_all(const DataSpec& spec, const std::string& format, std::string& label) {
  if (format == "libsvm" || format == "csv") {
    if (spec.path.empty()) return Result<Dataset>::failure("data.path: empty; name the data file");
    label = spec.path;
    return format == "csv" ? read_csv(spec.path, spec.read) : read_libsvm(spec.path, spec.read);
  }
  if (format == "idx") {
    if (spec.path.empty()) {
      return Result<Dataset>::failure("data.path: empty; name the IDX images file");
    }
    if (spec.labels_path.empty()) {
      return Result<Dataset>::failure("data.labels: empty; format idx needs the IDX labels file");
    }
    label = spec.path;
    return read_idx(spec.path, spec.labels_path, spec.read);
  }
  // fashion-mnist: the Debian package's layout, train-* and t10k-* files.
  std::string prefix;
  if (spec.split == "train")
    prefix = "train";
  else if (spec.split == "test")
    prefix = "t10k";
  else {
    return Result<Dataset>::failure("data.split: '" + spec.split +
                                    "' is not a split of fashion-mnist (expected train or test)");
  }
  const std::string dir = spec.path.empty() ? std::string(kFashionMnistDir) : spec.path;
  label = "fashion-mnist/" + spec.split;
  const std::string base = (std::filesystem::path(dir) / prefix).string();
  return read_idx(gz_or_plain(base + "-images-idx3-ubyte"),
                  gz_or_plain(base + "-labels-idx1-ubyte"), spec.read);
}

}  // namespace

const char* to_string(PartitionKind kind) {
  switch (kind) {
    case PartitionKind::iid:
      return "iid";
    case PartitionKind::by_label:
      return "by-label";
    case PartitionKind::dirichlet:
      return "dirichlet";
  }
  return "unknown";
}

std::string partition_name(PartitionKind kind, double alpha) {
  if (kind != PartitionKind::dirichlet) return to_string(kind);
  char buf[48];
  std::snprintf(buf, sizeof buf, "dirichlet:%g", alpha);
  return buf;
}

Result<PartitionKind> parse_partition(const std::string& name, double* alpha) {
  if (name == "iid") return PartitionKind::iid;
  if (name == "by-label" || name == "by_label") return PartitionKind::by_label;
  constexpr std::string_view kDirichlet = "dirichlet:";
  if (name.compare(0, kDirichlet.size(), kDirichlet) == 0) {
    const std::string value = name.substr(kDirichlet.size());
    char* end = nullptr;
    const double a = value.empty() ? NAN : std::strtod(value.c_str(), &end);
    if (end == nullptr || *end != '\0' || !std::isfinite(a) || a <= 0.0) {
      return Result<PartitionKind>::failure("'" + name +
                                            "': the Dirichlet alpha must be a finite number > 0 "
                                            "(e.g. dirichlet:0.3)");
    }
    if (alpha != nullptr) *alpha = a;
    return PartitionKind::dirichlet;
  }
  return Result<PartitionKind>::failure(
      "'" + name + "' is not a partition (expected iid, by-label or dirichlet:ALPHA)");
}

Result<Dataset> load_data(const DataSpec& spec, const Objective& objective) {
  // Checks that need no data come first, so a bad configuration fails before a long read.
  if (spec.limit < 0) {
    return Result<Dataset>::failure("data.limit: " + std::to_string(spec.limit) +
                                    " is negative (0 keeps every row)");
  }
  if (!std::isfinite(spec.scale)) {
    return Result<Dataset>::failure("data.scale: " + std::to_string(spec.scale) + " is not finite");
  }
  if (spec.shards < 1) {
    return Result<Dataset>::failure("data.shards: " + std::to_string(spec.shards) +
                                    " is not a number of shards (at least 1)");
  }
  if (spec.partition == PartitionKind::dirichlet && spec.shards > 1 &&
      !(std::isfinite(spec.dirichlet_alpha) && spec.dirichlet_alpha > 0.0)) {
    return Result<Dataset>::failure("data.partition: the Dirichlet alpha " +
                                    std::to_string(spec.dirichlet_alpha) +
                                    " is not a finite number > 0 (e.g. \"dirichlet:0.3\")");
  }
  if (spec.shard < 0 || spec.shard >= spec.shards) {
    return Result<Dataset>::failure("data.shard: " + std::to_string(spec.shard) + " is not in 0.." +
                                    std::to_string(spec.shards - 1) +
                                    " (data.shards = " + std::to_string(spec.shards) + ")");
  }
  auto format = resolve_format(spec);
  if (!format) return format.status();

  std::string label;
  auto read = read_all(spec, *format, label);
  if (!read) return read.status();
  Dataset data = std::move(*read);

  if (spec.limit > 0 && spec.limit < data.rows()) {
    std::vector<Index> first(static_cast<std::size_t>(spec.limit));
    std::iota(first.begin(), first.end(), Index(0));
    data = select_rows(data, first);
  }
  if (spec.scale != 1.0) scale_features(data, spec.scale);
  if (spec.normalize_rows) normalize_rows(data);
  if (spec.bias) append_constant(data, 1.0);

  if (spec.shards > data.rows()) {
    return Result<Dataset>::failure("data.shards: " + std::to_string(spec.shards) + " shards of " +
                                    label + ", which has " + std::to_string(data.rows()) + " rows" +
                                    (spec.limit > 0 ? " (after data.limit)" : "") +
                                    ": every shard needs at least one row");
  }
  // One shard is the whole data set in file order; otherwise partition on the raw labels.
  std::vector<std::vector<Index>> shards;
  if (spec.shards > 1)
    shards = partition(data, spec.shards, spec.partition, spec.seed, spec.dirichlet_alpha);
  // Labels are mapped on the whole data set, before the shard is cut, so that their messages
  // name the file's row (the mapping itself depends on no shard: multinomial's first class is
  // spec.first_class on every agent, never guessed from the labels present).
  data.source = label;
  if (Status s = prepare_labels(data, objective, spec.positive, spec.first_class); !s) return s;
  if (spec.shards > 1) {
    data = select_rows(data, shards[static_cast<std::size_t>(spec.shard)]);
    label += " [shard " + std::to_string(spec.shard) + "/" + std::to_string(spec.shards) + ", " +
             partition_name(spec.partition, spec.dirichlet_alpha);
    if (spec.partition != PartitionKind::by_label) label += " seed " + std::to_string(spec.seed);
    label += "]";
  }
  data.source = label;

  // Its messages already name data.source.
  if (Status s = validate(objective, data); !s) return s;
  advise_huge_pages(data);
  return data;
}

bool missing_features_are_zeros(const DataSpec& spec) {
  const auto format = resolve_format(spec);
  return format && *format == "libsvm";
}

Result<Dataset> load_validation(const DataSpec& data, const ValidationSpec& spec,
                                const Objective& objective, const Dataset& train) {
  if (spec.path.empty()) return Result<Dataset>::failure("validation.path: empty");
  DataSpec v = data;
  v.path = spec.path;
  v.labels_path = spec.labels_path;
  v.limit = 0;
  auto format = resolve_format(v);
  if (!format) return Status::error("validation.path: " + format.error());
  if (*format == "fashion-mnist") v.split = "test";
  // A missing LIBSVM feature is a zero: a narrower file is padded to the training width.
  const Index width = train.cols() - (data.bias ? 1 : 0);
  if (*format == "libsvm" && v.read.features == 0) v.read.features = width;
  auto loaded = load_data(v, objective);
  if (!loaded) return Status::error("validation.path (" + spec.path + "): " + loaded.error());
  if (loaded->cols() != train.cols())
    return Status::error("validation.path (" + spec.path + "): " +
                         std::to_string(loaded->cols()) + " columns after the data options, the " +
                         "training data (" + train.source + ") " + std::to_string(train.cols()));
  loaded->source = "validation " + loaded->source;
  return loaded;
}

Result<HeldOut> hold_out(const Dataset& data, double fraction, std::uint64_t seed) {
  if (!(fraction > 0 && fraction < 1))
    return Result<HeldOut>::failure("validation.holdout: " + std::to_string(fraction) +
                                    " is not a fraction in (0, 1)");
  const Index n = data.rows();
  const Index held = static_cast<Index>(std::llround(fraction * static_cast<double>(n)));
  if (held < 1 || held >= n)
    return Result<HeldOut>::failure(
        "validation.holdout: " + std::to_string(fraction) + " of the " + std::to_string(n) +
        " rows of " + data.source + " leaves " +
        (held < 1 ? "no validation row" : "no training row"));
  // Fisher-Yates with Rng(seed).below, as the iid partition draws (dataset.hpp).
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index(0));
  Rng rng(seed);
  for (Index i = n - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)],
              order[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  std::vector<Index> validation(order.begin(), order.begin() + held);
  std::vector<Index> train(order.begin() + held, order.end());
  std::sort(validation.begin(), validation.end());
  std::sort(train.begin(), train.end());
  HeldOut out{select_rows(data, train), select_rows(data, validation)};
  out.train.source = data.source;
  out.validation.source = data.source + " [held out " + std::to_string(held) + " rows, seed " +
                          std::to_string(seed) + "]";
  return out;
}

}  // namespace dsaga
