// Readers for LIBSVM, CSV and IDX (optionally gzip-compressed) data.
//
// Safety invariants, for input from anywhere:
// - Nothing is allocated from a size an input claims before that size is checked against the
//   bytes actually present (IDX headers, gzip's ISIZE trailer) and against the limits of
//   ReadOptions (max_dense_entries, max_file_bytes). Memory is therefore bounded by a small
//   multiple of the input size, or by the limits.
// - Every loop advances through the input, so malformed data cannot hang a reader.
// - No exception is thrown for bad input; std::bad_alloc can still escape if the machine runs out
//   of memory within those limits.
// - CSR storage has 32-bit indices: more than 2^31-1 non-zeros or features is an input error.
#include "dsaga/io.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "dsaga/files.hpp"

namespace dsaga {

namespace {

using StorageIndex = SparseMatrix<double>::StorageIndex;
constexpr Index kMaxStorageIndex = std::numeric_limits<StorageIndex>::max();

// --- messages ------------------------------------------------------------------------------

std::string at_line(const std::string& name, Index line, const std::string& what) {
  return name + ":" + std::to_string(line) + ": " + what;
}

std::string at_byte(const std::string& name, std::uint64_t offset, const std::string& what) {
  return name + ": byte " + std::to_string(offset) + ": " + what;
}

// A token quoted for a message: at most 40 characters, non-printable bytes shown as '?'.
std::string quote(std::string_view token) {
  constexpr std::size_t kMax = 40;
  std::string out = "'";
  for (std::size_t i = 0; i < token.size() && i < kMax; ++i) {
    const unsigned char ch = static_cast<unsigned char>(token[i]);
    out += (ch >= 0x20 && ch < 0x7f) ? static_cast<char>(ch) : '?';
  }
  if (token.size() > kMax) out += "...";
  return out + "'";
}

// --- numbers -------------------------------------------------------------------------------

enum class NumberError { none, not_a_number, not_finite, out_of_range, float_overflow };

// The whole token must be a decimal floating-point number (std::from_chars: locale-free; a
// leading '+' is accepted as well). Values stored as S must be finite in S.
template <class S>
NumberError parse_number(std::string_view token, double& out) {
  const char* first = token.data();
  const char* last = first + token.size();
  if (first != last && *first == '+' && last - first > 1 && first[1] != '-' && first[1] != '+') {
    ++first;
  }
  const auto [end, ec] = std::from_chars(first, last, out, std::chars_format::general);
  if (ec == std::errc::result_out_of_range && end == last) return NumberError::out_of_range;
  if (ec != std::errc() || end != last || first == last) return NumberError::not_a_number;
  if (!std::isfinite(out)) return NumberError::not_finite;
  // Checked before the conversion: a double outside float's range does not convert portably.
  if (std::is_same_v<S, float> && std::abs(out) > double(std::numeric_limits<float>::max())) {
    return NumberError::float_overflow;
  }
  return NumberError::none;
}

// "<what> is not a number" etc.; `what` is the quoted token, possibly with a prefix.
std::string number_problem(NumberError e, const std::string& what) {
  switch (e) {
    case NumberError::not_a_number:
      return what + " is not a number";
    case NumberError::not_finite:
      return what + " is not finite";
    case NumberError::out_of_range:
      return what + " is out of the range of a double";
    case NumberError::float_overflow:
      return what + " does not fit float32 storage";
    case NumberError::none:
      break;
  }
  return what;
}

// --- text ----------------------------------------------------------------------------------

bool is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f'; }

std::string_view trim(std::string_view s, char keep = '\0') {
  while (!s.empty() && is_space(s.front()) && s.front() != keep) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()) && s.back() != keep) s.remove_suffix(1);
  return s;
}

// Splits text into lines ('\n', with an optional '\r' before it), numbered from 1.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") text_.remove_prefix(3);  // UTF-8 byte-order mark
  }
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    const char* start = text_.data() + pos_;
    const std::size_t left = text_.size() - pos_;
    const void* nl = std::memchr(start, '\n', left);
    const std::size_t len =
        nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - start) : left;
    pos_ += len + 1;
    ++number_;
    line = std::string_view(start, len);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return true;
  }
  Index number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  Index number_ = 0;
};

// The next whitespace-separated token of `line` from `pos`; empty at the end.
std::string_view next_token(std::string_view line, std::size_t& pos) {
  while (pos < line.size() && is_space(line[pos])) ++pos;
  const std::size_t start = pos;
  while (pos < line.size() && !is_space(line[pos])) ++pos;
  return line.substr(start, pos - start);
}

// --- storage -------------------------------------------------------------------------------

// Row-major CSR arrays while reading; `outer` starts with 0 and gets one entry per row.
template <class S>
struct CsrBuilder {
  std::vector<StorageIndex> outer{0};
  std::vector<StorageIndex> inner;
  std::vector<S> values;

  Index rows() const { return static_cast<Index>(outer.size()) - 1; }
  bool full() const { return static_cast<Index>(values.size()) >= kMaxStorageIndex; }
  void end_row() { outer.push_back(static_cast<StorageIndex>(values.size())); }

  SparseMatrix<S> sparse(Index cols) {
    SparseMatrix<S> M(rows(), cols);
    M.resizeNonZeros(static_cast<Index>(values.size()));
    std::copy(outer.begin(), outer.end(), M.outerIndexPtr());
    std::copy(inner.begin(), inner.end(), M.innerIndexPtr());
    std::copy(values.begin(), values.end(), M.valuePtr());
    release();
    return M;
  }
  DenseMatrix<S> dense(Index cols) {
    DenseMatrix<S> D = DenseMatrix<S>::Zero(rows(), cols);
    for (Index r = 0; r < rows(); ++r) {
      for (StorageIndex k = outer[r]; k < outer[r + 1]; ++k) D(r, inner[k]) = values[k];
    }
    release();
    return D;
  }
  void release() {
    std::vector<StorageIndex>().swap(inner);
    std::vector<S>().swap(values);
  }
};

// rows * cols <= limit, without overflow.
bool within(Index rows, Index cols, Index limit) {
  return rows == 0 || cols == 0 || (limit >= 0 && rows <= limit / cols);
}

Status check_storage_options(const ReadOptions& o, const std::string& name) {
  if (o.force_dense && o.force_sparse) {
    return Status::error(name + ": ReadOptions force_dense and force_sparse are both set");
  }
  if (o.features < 0) {
    return Status::error(name + ": ReadOptions::features is negative (" +
                         std::to_string(o.features) + ")");
  }
  return Status::ok();
}

std::string dense_too_large(Index rows, Index cols, Index limit) {
  return std::to_string(rows) + " rows x " + std::to_string(cols) +
         " features exceed ReadOptions::max_dense_entries (" + std::to_string(limit) +
         " values); read the data as sparse or raise the limit";
}

// --- LIBSVM --------------------------------------------------------------------------------

template <class S>
Result<Dataset> parse_libsvm_as(std::string_view text, const std::string& name,
                                const ReadOptions& o) {
  CsrBuilder<S> csr;
  std::vector<double> labels;
  // Column index = file index - base; the largest column index a row may use.
  const Index base = o.zero_based ? 0 : 1;
  const Index max_col = o.features > 0 ? o.features - 1 : kMaxStorageIndex - 1;
  Index widest = -1;  // largest column index seen

  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const Index ln = lines.number();
    if (const auto hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    std::size_t pos = 0;
    const std::string_view label_token = next_token(line, pos);
    if (label_token.empty()) continue;  // blank or comment-only line

    double label = 0.0;
    if (auto e = parse_number<double>(label_token, label); e != NumberError::none) {
      return Result<Dataset>::failure(
          at_line(name, ln, number_problem(e, "label " + quote(label_token))));
    }
    Index previous = -1;  // column index of the previous feature on this line
    for (std::string_view token = next_token(line, pos); !token.empty();
         token = next_token(line, pos)) {
      if (token.substr(0, 4) == "qid:") continue;  // SVMlight query ids: not a feature
      const auto colon = token.find(':');
      if (colon == std::string_view::npos) {
        return Result<Dataset>::failure(
            at_line(name, ln, quote(token) + " is not an index:value pair"));
      }
      const std::string_view index_text = token.substr(0, colon);
      const std::string_view value_text = token.substr(colon + 1);
      std::int64_t index = 0;
      const auto [end, ec] =
          std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
      if (ec != std::errc() || end != index_text.data() + index_text.size()) {
        return Result<Dataset>::failure(at_line(
            name, ln,
            "feature index " + quote(index_text) + " is not an integer (in " + quote(token) + ")"));
      }
      const auto index_str = [index] { return std::to_string(index); };  // for messages only
      if (index < 0) {
        return Result<Dataset>::failure(
            at_line(name, ln, "feature index " + index_str() + " is negative"));
      }
      if (index < base) {
        return Result<Dataset>::failure(
            at_line(name, ln,
                    "feature index 0 is not allowed in a 1-based file (set zero_based for 0-based "
                    "indices)"));
      }
      const Index col = index - base;
      if (col > max_col) {
        return Result<Dataset>::failure(
            at_line(name, ln,
                    o.features > 0
                        ? "feature index " + index_str() + " is beyond the " +
                              std::to_string(o.features) + " features set in ReadOptions::features"
                        : "feature index " + index_str() + " is too large (at most " +
                              std::to_string(kMaxStorageIndex) + " features)"));
      }
      if (col <= previous) {
        return Result<Dataset>::failure(at_line(name, ln,
                                                "feature index " + index_str() + " follows index " +
                                                    std::to_string(previous + base) +
                                                    ": indices must increase within a line"));
      }
      previous = col;
      double value = 0.0;
      if (auto e = parse_number<S>(value_text, value); e != NumberError::none) {
        return Result<Dataset>::failure(at_line(
            name, ln,
            number_problem(e, "value " + quote(value_text) + " of feature " + index_str())));
      }
      if (value == 0.0) continue;  // explicit zeros are not stored
      if (csr.full()) {
        return Result<Dataset>::failure(at_line(name, ln,
                                                "more than " + std::to_string(kMaxStorageIndex) +
                                                    " non-zeros: too many for one shard"));
      }
      csr.inner.push_back(static_cast<StorageIndex>(col));
      csr.values.push_back(static_cast<S>(value));
      widest = std::max(widest, col);
    }
    labels.push_back(label);
    csr.end_row();
  }

  if (labels.empty()) {
    return Result<Dataset>::failure(
        name + ": no samples (the data is empty or holds only comments and blank lines)");
  }
  const Index cols = o.features > 0 ? o.features : widest + 1;
  if (cols == 0) {
    return Result<Dataset>::failure(
        name + ": no feature on any line (set ReadOptions::features if that is intended)");
  }
  Dataset out;
  out.source = name;
  out.y = Eigen::Map<const Eigen::VectorXd>(labels.data(), static_cast<Index>(labels.size()));
  if (o.force_dense) {
    if (!within(csr.rows(), cols, o.max_dense_entries)) {
      return Result<Dataset>::failure(name + ": " +
                                      dense_too_large(csr.rows(), cols, o.max_dense_entries));
    }
    out.X = csr.dense(cols);
  } else {
    out.X = csr.sparse(cols);
  }
  return out;
}

// --- CSV -----------------------------------------------------------------------------------

template <class S>
Result<Dataset> parse_csv_as(std::string_view text, const std::string& name, const ReadOptions& o) {
  const char delim = o.csv_delimiter;
  const auto blank = [delim](std::string_view line) { return trim(line, delim).empty(); };

  // First pass: the data rows (non-blank lines, less the header), to allocate dense storage once.
  Index data_rows = 0;
  {
    LineReader lines(text);
    std::string_view line;
    while (lines.next(line)) data_rows += !blank(line);
    if (o.csv_header && data_rows > 0) --data_rows;
  }

  std::vector<double> labels;
  labels.reserve(static_cast<std::size_t>(data_rows));
  CsrBuilder<S> csr;
  DenseMatrix<S> dense;
  Index fields = 0, first_line = 0, cols = 0;
  bool header_pending = o.csv_header;

  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const Index ln = lines.number();
    if (blank(line)) continue;
    if (header_pending) {
      header_pending = false;
      continue;
    }
    const Index count = 1 + static_cast<Index>(std::count(line.begin(), line.end(), delim));
    if (fields == 0) {
      if (count < 2) {
        return Result<Dataset>::failure(
            at_line(name, ln, "1 field: a row needs a label and at least one feature"));
      }
      fields = count;
      first_line = ln;
      cols = count - 1;
      if (o.features > 0 && cols != o.features) {
        return Result<Dataset>::failure(at_line(name, ln,
                                                std::to_string(cols) + " features, expected " +
                                                    std::to_string(o.features) +
                                                    " as set in ReadOptions::features"));
      }
      if (o.force_sparse && cols > kMaxStorageIndex) {
        return Result<Dataset>::failure(at_line(name, ln, "too many fields for sparse storage"));
      }
      if (!o.force_sparse) {
        if (!within(data_rows, cols, o.max_dense_entries)) {
          return Result<Dataset>::failure(
              at_line(name, ln, dense_too_large(data_rows, cols, o.max_dense_entries)));
        }
        dense.resize(data_rows, cols);
      }
    } else if (count != fields) {
      return Result<Dataset>::failure(at_line(name, ln,
                                              std::to_string(count) + " fields, expected " +
                                                  std::to_string(fields) + " as on line " +
                                                  std::to_string(first_line)));
    }

    const Index row = static_cast<Index>(labels.size());
    std::size_t start = 0;
    for (Index f = 0; f < count; ++f) {
      std::size_t stop = line.find(delim, start);
      if (stop == std::string_view::npos) stop = line.size();
      const std::string_view field = trim(line.substr(start, stop - start), delim);
      start = stop + 1;
      if (field.empty()) {
        return Result<Dataset>::failure(
            at_line(name, ln, "field " + std::to_string(f + 1) + " is empty"));
      }
      double value = 0.0;
      if (auto e = f == 0 ? parse_number<double>(field, value) : parse_number<S>(field, value);
          e != NumberError::none) {
        std::string what = number_problem(e, quote(field));
        if (e == NumberError::not_a_number && ln == first_line && !o.csv_header) {
          what += " (set csv_header if line " + std::to_string(ln) + " is a header)";
        }
        return Result<Dataset>::failure(at_line(name, ln, what));
      }
      if (f == 0) {
        labels.push_back(value);
      } else if (o.force_sparse) {
        if (value == 0.0) continue;
        if (csr.full()) {
          return Result<Dataset>::failure(at_line(name, ln,
                                                  "more than " + std::to_string(kMaxStorageIndex) +
                                                      " non-zeros: too many for one shard"));
        }
        csr.inner.push_back(static_cast<StorageIndex>(f - 1));
        csr.values.push_back(static_cast<S>(value));
      } else {
        dense(row, f - 1) = static_cast<S>(value);
      }
    }
    if (o.force_sparse) csr.end_row();
  }

  if (labels.empty()) {
    return Result<Dataset>::failure(name + ": no samples (the data is empty" +
                                    std::string(o.csv_header ? " or only a header)" : ")"));
  }
  Dataset out;
  out.source = name;
  out.y = Eigen::Map<const Eigen::VectorXd>(labels.data(), static_cast<Index>(labels.size()));
  if (o.force_sparse)
    out.X = csr.sparse(cols);
  else
    out.X = std::move(dense);  // exactly data_rows rows were filled
  return out;
}

// --- IDX -----------------------------------------------------------------------------------

std::uint32_t be32(std::string_view bytes, std::size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension

template <class S>
Result<Dataset> parse_idx_as(std::string_view images, std::string_view labels,
                             const std::string& images_name, const std::string& labels_name,
                             const ReadOptions& o) {
  using R = Result<Dataset>;
  // Images header: magic, n, rows, cols.
  if (images.size() < 4)
    return R::failure(
        at_byte(images_name, images.size(), "the file ends inside the IDX magic number"));
  if (const auto magic = be32(images, 0); magic != kIdxImagesMagic) {
    return R::failure(at_byte(images_name, 0,
                              "magic number " + hex32(magic) + " is not that of IDX images (" +
                                  hex32(kIdxImagesMagic) + ": unsigned bytes, 3 dimensions)"));
  }
  if (images.size() < 16) {
    return R::failure(
        at_byte(images_name, images.size(), "the file ends inside the 16-byte IDX header"));
  }
  const std::uint64_t n = be32(images, 4), height = be32(images, 8), width = be32(images, 12);
  if (n == 0) return R::failure(at_byte(images_name, 4, "the header gives 0 images (no data)"));
  if (height == 0 || width == 0) {
    return R::failure(at_byte(
        images_name, 8,
        "image size " + std::to_string(height) + " x " + std::to_string(width) + " has no pixels"));
  }
  const std::uint64_t pixels = height * width;  // < 2^64: both factors < 2^32
  if (pixels > static_cast<std::uint64_t>(kMaxStorageIndex)) {
    return R::failure(at_byte(images_name, 8,
                              "images of " + std::to_string(height) + " x " +
                                  std::to_string(width) + " pixels exceed " +
                                  std::to_string(kMaxStorageIndex) + " features"));
  }
  if (o.features > 0 && pixels != static_cast<std::uint64_t>(o.features)) {
    return R::failure(at_byte(images_name, 8,
                              "images have " + std::to_string(pixels) +
                                  " pixels, but ReadOptions::features is " +
                                  std::to_string(o.features)));
  }
  // The pixel bytes present bound everything allocated below.
  const std::uint64_t present = images.size() - 16;
  if (n > present / pixels) {
    return R::failure(at_byte(images_name, 16,
                              "the header claims " + std::to_string(n) + " images of " +
                                  std::to_string(height) + " x " + std::to_string(width) +
                                  " pixels (" + std::to_string(n) + " x " + std::to_string(pixels) +
                                  " bytes), but only " + std::to_string(present) +
                                  " bytes follow"));
  }
  const std::uint64_t expected = n * pixels;  // <= present
  if (expected < present) {
    return R::failure(at_byte(images_name, 16 + expected,
                              std::to_string(present - expected) +
                                  " bytes after the last image (wrong header or not an IDX file)"));
  }

  // Labels header: magic, n.
  if (labels.size() < 4)
    return R::failure(
        at_byte(labels_name, labels.size(), "the file ends inside the IDX magic number"));
  if (const auto magic = be32(labels, 0); magic != kIdxLabelsMagic) {
    return R::failure(at_byte(labels_name, 0,
                              "magic number " + hex32(magic) + " is not that of IDX labels (" +
                                  hex32(kIdxLabelsMagic) + ": unsigned bytes, 1 dimension)"));
  }
  if (labels.size() < 8) {
    return R::failure(
        at_byte(labels_name, labels.size(), "the file ends inside the 8-byte IDX header"));
  }
  const std::uint64_t n_labels = be32(labels, 4);
  if (n_labels != n) {
    return R::failure(at_byte(labels_name, 4,
                              std::to_string(n_labels) + " labels, but " + images_name + " holds " +
                                  std::to_string(n) + " images"));
  }
  const std::uint64_t label_bytes = labels.size() - 8;
  if (label_bytes < n) {
    return R::failure(at_byte(labels_name, 8,
                              "the header claims " + std::to_string(n) + " labels, but only " +
                                  std::to_string(label_bytes) + " bytes follow"));
  }
  if (label_bytes > n) {
    return R::failure(at_byte(labels_name, 8 + n,
                              std::to_string(label_bytes - n) +
                                  " bytes after the last label (wrong header or not an IDX file)"));
  }

  const auto rows = static_cast<Index>(n), cols = static_cast<Index>(pixels);
  const auto* pix = reinterpret_cast<const unsigned char*>(images.data() + 16);
  const auto* lab = reinterpret_cast<const unsigned char*>(labels.data() + 8);
  Dataset out;
  out.source = images_name;
  out.y.resize(rows);
  for (Index i = 0; i < rows; ++i) out.y[i] = lab[i];
  if (o.force_sparse) {
    std::uint64_t nnz = 0;
    for (std::uint64_t k = 0; k < expected; ++k) nnz += pix[k] != 0;
    if (nnz > static_cast<std::uint64_t>(kMaxStorageIndex)) {
      return R::failure(at_byte(images_name, 16,
                                std::to_string(nnz) + " non-zero pixels: too many for one shard"));
    }
    SparseMatrix<S> M(rows, cols);
    M.resizeNonZeros(static_cast<Index>(nnz));
    StorageIndex k = 0;
    for (Index r = 0; r < rows; ++r) {
      M.outerIndexPtr()[r] = k;
      const unsigned char* row = pix + r * cols;
      for (Index c = 0; c < cols; ++c) {
        if (row[c] == 0) continue;
        M.innerIndexPtr()[k] = static_cast<StorageIndex>(c);
        M.valuePtr()[k] = static_cast<S>(row[c]);
        ++k;
      }
    }
    M.outerIndexPtr()[rows] = k;
    out.X = std::move(M);
  } else {
    if (!within(rows, cols, o.max_dense_entries)) {
      return R::failure(at_byte(images_name, 4, dense_too_large(rows, cols, o.max_dense_entries)));
    }
    DenseMatrix<S> D(rows, cols);
    S* dst = D.data();
    for (std::uint64_t k = 0; k < expected; ++k) dst[k] = static_cast<S>(pix[k]);
    out.X = std::move(D);
  }
  return out;
}

}  // namespace

// --- public --------------------------------------------------------------------------------

Result<Dataset> parse_libsvm(std::string_view text, const std::string& name,
                             const ReadOptions& options) {
  if (Status s = check_storage_options(options, name); !s) return s;
  return options.precision == Precision::f32 ? parse_libsvm_as<float>(text, name, options)
                                             : parse_libsvm_as<double>(text, name, options);
}

Result<Dataset> parse_csv(std::string_view text, const std::string& name,
                          const ReadOptions& options) {
  if (Status s = check_storage_options(options, name); !s) return s;
  if (options.csv_delimiter == '\n' || options.csv_delimiter == '\0' ||
      options.csv_delimiter == '\r') {
    return Result<Dataset>::failure(name +
                                    ": ReadOptions::csv_delimiter cannot be a line end or NUL");
  }
  return options.precision == Precision::f32 ? parse_csv_as<float>(text, name, options)
                                             : parse_csv_as<double>(text, name, options);
}

Result<Dataset> parse_idx(std::string_view images, std::string_view labels,
                          const std::string& images_name, const std::string& labels_name,
                          const ReadOptions& options) {
  if (Status s = check_storage_options(options, images_name); !s) return s;
  return options.precision == Precision::f32
             ? parse_idx_as<float>(images, labels, images_name, labels_name, options)
             : parse_idx_as<double>(images, labels, images_name, labels_name, options);
}

Result<Dataset> read_libsvm(const std::string& path, const ReadOptions& options) {
  auto bytes = read_file_bytes(path, true, options.max_file_bytes);
  if (!bytes) return bytes.status();
  return parse_libsvm(*bytes, path, options);
}

Result<Dataset> read_csv(const std::string& path, const ReadOptions& options) {
  auto bytes = read_file_bytes(path, true, options.max_file_bytes);
  if (!bytes) return bytes.status();
  return parse_csv(*bytes, path, options);
}

Result<Dataset> read_idx(const std::string& images_path, const std::string& labels_path,
                         const ReadOptions& options) {
  auto labels = read_file_bytes(labels_path, true, options.max_file_bytes);
  if (!labels) return labels.status();
  auto images = read_file_bytes(images_path, true, options.max_file_bytes);
  if (!images) return images.status();
  return parse_idx(*images, *labels, images_path, labels_path, options);
}

}  // namespace dsaga
