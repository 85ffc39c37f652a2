// Command-line options shared by the programs that load data (dsaga-agent, dsaga-reference,
// dsaga-predict): the same names, defaults and checks everywhere. Header-only; CLI11 stays out
// of libdsaga.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "dsaga/data_source.hpp"
#include "dsaga/objective.hpp"

namespace dsaga::cli {

class DataOptions {
 public:
  // Binds to `spec` and `objective` (loss, classes), whose current values are the defaults.
  DataOptions(CLI::App& app, DataSpec& spec, Objective& objective)
      : spec_(spec), objective_(objective) {
    loss_ = to_string(objective.loss);
    partition_ = partition_name(spec.partition, spec.dirichlet_alpha);
    precision_ = spec.read.precision == Precision::f32 ? "f32" : "f64";
    storage_ = spec.read.force_dense ? "dense" : spec.read.force_sparse ? "sparse" : "auto";
    app.add_option("--loss", loss_, "logistic, squared or multinomial")->capture_default_str();
    app.add_option("--classes", objective.classes, "Classes (multinomial)")->capture_default_str();
    auto* d = app.add_option_group("Data", "Where the data is and how to prepare it");
    d->add_option("--data", spec.path,
                  "Data file (LIBSVM, CSV, IDX images) or the fashion-mnist directory");
    d->add_option("--format", spec.format, "auto, libsvm, csv, idx, fashion-mnist")
        ->capture_default_str();
    d->add_option("--labels", spec.labels_path, "IDX labels file");
    d->add_option("--features", spec.read.features,
                  "LIBSVM: the number of features; a file whose highest index is lower is padded "
                  "with zero columns (a missing feature is zero), one with a higher index is "
                  "refused. Give every agent of a natural split the model's width (without the "
                  "--bias column). 0 = the highest index in the file")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    d->add_option("--split", spec.split, "fashion-mnist: train or test")->capture_default_str();
    d->add_option("--limit", spec.limit, "Keep the first rows only (0 = all)")
        ->capture_default_str();
    d->add_option("--scale", spec.scale, "Multiply every feature (pixels/255: 0.00392156862745098)")
        ->capture_default_str();
    d->add_flag("--normalize,!--no-normalize", spec.normalize_rows,
                "Scale each row to unit L2 norm (after --scale)")
        ->capture_default_str();
    d->add_flag("--bias,!--no-bias", spec.bias, "Append a constant 1 feature")
        ->capture_default_str();
    d->add_option("--positive", spec.positive, "Logistic: raw labels that become +1 (e.g. 0,2,4,6)")
        ->delimiter(',');
    d->add_option("--first-class", spec.first_class,
                  "Multinomial: the label of the first class, 0 (labels 0..C-1) or 1 (1..C); "
                  "the data set's convention, the same on every agent")
        ->capture_default_str()
        ->check(CLI::IsMember({0, 1}));
    d->add_option("--shards", spec.shards, "Split the data set into K shards...")
        ->capture_default_str();
    d->add_option("--shard", spec.shard, "...and keep this one (0..K-1)")->capture_default_str();
    d->add_option("--partition", partition_,
                  "iid, by-label or dirichlet:ALPHA (per label, shard shares ~ Dirichlet(ALPHA))")
        ->capture_default_str();
    d->add_option("--data-seed", spec.seed, "Seed of the iid and dirichlet partitions")
        ->capture_default_str();
    d->add_option("--precision", precision_, "Feature storage: f32 or f64")->capture_default_str();
    d->add_option("--storage", storage_, "auto, dense or sparse")->capture_default_str();
  }

  // After parsing: turns the string options into values. The error names the option.
  Status apply() {
    if (auto parsed = parse_loss(loss_); parsed) objective_.loss = *parsed;
    else return Status::error("--loss: " + parsed.error());
    if (auto parsed = parse_partition(partition_, &spec_.dirichlet_alpha); parsed)
      spec_.partition = *parsed;
    else return Status::error("--partition: " + parsed.error());
    if (precision_ != "f32" && precision_ != "f64")
      return Status::error("--precision: '" + precision_ + "', expected f32 or f64");
    spec_.read.precision = precision_ == "f32" ? Precision::f32 : Precision::f64;
    if (storage_ != "auto" && storage_ != "dense" && storage_ != "sparse")
      return Status::error("--storage: '" + storage_ + "', expected auto, dense or sparse");
    spec_.read.force_dense = storage_ == "dense";
    spec_.read.force_sparse = storage_ == "sparse";
    return Status::ok();
  }

 private:
  DataSpec& spec_;
  Objective& objective_;
  std::string loss_, partition_, precision_, storage_;
};

}  // namespace dsaga::cli
