// Readers for the data formats users have: LIBSVM/SVMlight text, CSV with the label first, and
// IDX (the MNIST family, optionally gzip-compressed). Every error names the file and the line
// (text formats) or byte offset (binary formats) and says what is wrong; malformed input never
// crashes or hangs, and sizes read from a header are checked against the bytes present before
// anything is allocated.
#pragma once

#include <string>
#include <string_view>

#include "dsaga/dataset.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

struct ReadOptions {
  Precision precision = Precision::f64;
  // LIBSVM: sparse unless `force_dense`; CSV and IDX: dense unless `force_sparse`.
  bool force_dense = false;
  bool force_sparse = false;
  // LIBSVM: number of features; 0 means the largest index seen. Data with a larger index is an
  // error (a shard must agree with the model's dimension).
  Index features = 0;
  // LIBSVM indices are 1-based by convention; set for 0-based files.
  bool zero_based = false;
  // CSV: skip a first line that is a header.
  bool csv_header = false;
  char csv_delimiter = ',';
  // Upper bound on rows*cols for dense storage, so a hostile header cannot ask for terabytes.
  Index max_dense_entries = Index(1) << 31;
};

Result<Dataset> read_libsvm(const std::string& path, const ReadOptions& options = {});
Result<Dataset> read_csv(const std::string& path, const ReadOptions& options = {});
// IDX images (idx3, unsigned bytes, any n x rows x cols) and labels (idx1); each file may be
// gzip-compressed. Pixels are stored as read (0..255): scale with scale_features.
Result<Dataset> read_idx(const std::string& images_path, const std::string& labels_path,
                         const ReadOptions& options = {});

// The same parsers over bytes in memory; `name` is used in error messages. (Used by the file
// readers and by the fuzz targets.)
Result<Dataset> parse_libsvm(std::string_view text, const std::string& name,
                             const ReadOptions& options = {});
Result<Dataset> parse_csv(std::string_view text, const std::string& name,
                          const ReadOptions& options = {});
Result<Dataset> parse_idx(std::string_view images, std::string_view labels,
                          const std::string& images_name, const std::string& labels_name,
                          const ReadOptions& options = {});

// Whole file into memory, gunzipped when it starts with the gzip magic. The error names the file.
Result<std::string> read_file_bytes(const std::string& path, bool gunzip = true);

}  // namespace dsaga
