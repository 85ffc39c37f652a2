// Readers for the data formats users have: LIBSVM/SVMlight text, CSV with the label first, and
// IDX (the MNIST family, optionally gzip-compressed). Every error names the file and the line
// (text formats) or byte offset (binary formats) and says what is wrong; malformed input never
// crashes or hangs, and sizes read from a header are checked against the bytes present before
// anything is allocated.
#pragma once

#include <string>
#include <string_view>

#include "dsaga/dataset.hpp"
#include "dsaga/files.hpp"
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
  // Upper bound on the bytes of a file, and on what a gzip-compressed file inflates to: a
  // decompression bomb (a few kB that inflate to terabytes) fails once it passes this many bytes
  // instead of exhausting memory. 2 GiB, generous for one shard; raise it for larger files.
  Index max_file_bytes = kDefaultMaxFileBytes;
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

// Error messages: "<file>:<line>: <what>" for the text formats (lines count from 1),
// "<file>: byte <offset>: <what>" for IDX and gzip, "<file>: <what>" for whole-file problems
// (cannot open, no samples). Numbers are parsed with std::from_chars (locale-independent);
// NaN and infinite values are errors, as is a value that does not fit float32 storage.
//
// LIBSVM: "<label> [qid:<n>] <index>:<value> ...", '#' starts a comment, blank lines are
// skipped; indices increase strictly within a line; explicit zero values are not stored.
// CSV: label first, then the features; every row has as many fields as the first data row;
// blank lines are skipped; a UTF-8 byte-order mark and CRLF line ends are accepted.
// IDX: big-endian header, images magic 0x00000803 (n x rows x cols unsigned bytes), labels
// magic 0x00000801 (n unsigned bytes); both files hold the same n and nothing after the data.

}  // namespace dsaga
