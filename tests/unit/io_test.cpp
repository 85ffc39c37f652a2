#include "dsaga/io.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <new>
#include <string>
#include <vector>

// Largest single request to the global operator new while `g_track` is set: the readers'
// buffers (std::string, std::vector) come from here, so a test can assert that a size claimed by
// a header was never requested.
namespace {
std::atomic<bool> g_track{false};
std::atomic<std::size_t> g_largest{0};
}  // namespace

// Out of line, so that the compiler does not pair an inlined free() with a new-expression.
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (g_track.load(std::memory_order_relaxed)) {
    std::size_t seen = g_largest.load(std::memory_order_relaxed);
    while (n > seen && !g_largest.compare_exchange_weak(seen, n)) {
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace dsaga {
namespace {

const std::string kData = DSAGA_TEST_DATA_DIR;
const std::string kFashion = "/usr/share/datasets/fashion-mnist";

struct AllocationProbe {
  AllocationProbe() {
    g_largest = 0;
    g_track = true;
  }
  ~AllocationProbe() { g_track = false; }
  std::size_t largest() const { return g_largest.load(); }
};

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "dsaga_io_test_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

DenseMatrix<double> dense(const Dataset& d) {
  return std::visit(
      [](const auto& X) -> DenseMatrix<double> {
        return DenseMatrix<double>(X.template cast<double>());
      },
      d.X);
}

std::string error_of(const Result<Dataset>& r) { return r.is_ok() ? "(no error)" : r.error(); }

// --- LIBSVM ----------------------------------------------------------------------------------

TEST(Libsvm, ReadsAValidFileSparse) {
  const std::string path = kData + "/valid.svm";
  auto r = read_libsvm(path);
  ASSERT_TRUE(r.is_ok()) << r.error();
  const Dataset& d = *r;
  EXPECT_EQ(d.source, path);
  EXPECT_TRUE(d.is_sparse());
  EXPECT_EQ(d.precision(), Precision::f64);
  ASSERT_EQ(d.rows(), 3);
  EXPECT_EQ(d.cols(), 4);
  EXPECT_EQ(d.nnz(), 2 + 1 + 4);  // "4:0" is not stored
  EXPECT_EQ(d.y, Eigen::Vector3d(1, -1, 2.5));
  DenseMatrix<double> expected(3, 4);
  expected << 0.5, 0, -2, 0, 0, 1e-3, 0, 0, 1, 2, 3, 4;
  EXPECT_EQ(dense(d), expected);
  EXPECT_TRUE(std::get<SparseMatrix<double>>(d.X).isCompressed());
}

TEST(Libsvm, GzipFeaturesOptionsAndStorage) {
  ReadOptions o;
  o.features = 10;
  o.force_dense = true;
  o.precision = Precision::f32;
  auto r = read_libsvm(kData + "/valid.svm.gz", o);
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_FALSE(r->is_sparse());
  EXPECT_EQ(r->precision(), Precision::f32);
  EXPECT_EQ(r->cols(), 10);
  EXPECT_EQ(dense(*r)(1, 1), static_cast<double>(1e-3f));

  ReadOptions zero;
  zero.zero_based = true;
  auto z = parse_libsvm("1 0:5 3:1\n0 2:-1\n", "z.svm", zero);
  ASSERT_TRUE(z.is_ok()) << z.error();
  EXPECT_EQ(z->cols(), 4);
  EXPECT_EQ(dense(*z)(0, 0), 5.0);
  EXPECT_EQ(dense(*z)(1, 2), -1.0);
}

TEST(Libsvm, RejectsMalformedLinesWithFileAndLine) {
  ReadOptions f5;
  f5.features = 5;
  ReadOptions f32;
  f32.precision = Precision::f32;
  const struct {
    const char* text;
    ReadOptions options;
    const char* error;
  } cases[] = {
      {"1 1:1\n\n+1 0:2\n",
       {},
       "t.svm:3: feature index 0 is not allowed in a 1-based file (set zero_based for 0-based "
       "indices)"},
      {"1 3:1 2:1\n",
       {},
       "t.svm:1: feature index 2 follows index 3: indices must increase within a line"},
      {"1 2:1 2:1\n",
       {},
       "t.svm:1: feature index 2 follows index 2: indices must increase within a line"},
      {"1 2:1\n1 3\n", {}, "t.svm:2: '3' is not an index:value pair"},
      {"# c\nabc 1:1\n", {}, "t.svm:2: label 'abc' is not a number"},
      {"1 1:x\n", {}, "t.svm:1: value 'x' of feature 1 is not a number"},
      {"1 1:nan\n", {}, "t.svm:1: value 'nan' of feature 1 is not finite"},
      {"inf 1:1\n", {}, "t.svm:1: label 'inf' is not finite"},
      {"1 1:1e999\n", {}, "t.svm:1: value '1e999' of feature 1 is out of the range of a double"},
      {"1 6:1\n", f5,
       "t.svm:1: feature index 6 is beyond the 5 features set in ReadOptions::features"},
      {"1 -2:1\n", {}, "t.svm:1: feature index -2 is negative"},
      {"1 1.5:1\n", {}, "t.svm:1: feature index '1.5' is not an integer (in '1.5:1')"},
      {"1 3000000000:1\n",
       {},
       "t.svm:1: feature index 3000000000 is too large (at most 2147483647 features)"},
      {"1 1:1e39\n", f32, "t.svm:1: value '1e39' of feature 1 does not fit float32 storage"},
      {"", {}, "t.svm: no samples (the data is empty or holds only comments and blank lines)"},
      {"# only\n\n  # comments\n",
       {},
       "t.svm: no samples (the data is empty or holds only comments and blank lines)"},
      {"1\n-1\n",
       {},
       "t.svm: no feature on any line (set ReadOptions::features if that is intended)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(error_of(parse_libsvm(c.text, "t.svm", c.options)), c.error);
  }
}

TEST(Libsvm, DenseLimitIsCheckedBeforeAllocating) {
  ReadOptions o;
  o.force_dense = true;
  o.max_dense_entries = 1000;
  AllocationProbe probe;
  EXPECT_EQ(error_of(parse_libsvm("1 2000000000:1\n", "t.svm", o)),
            "t.svm: 1 rows x 2000000000 features exceed ReadOptions::max_dense_entries (1000 "
            "values); read the data as sparse or raise the limit");
  EXPECT_LT(probe.largest(), 1u << 20);
}

// --- CSV -------------------------------------------------------------------------------------

TEST(Csv, ReadsAValidFileWithHeader) {
  ReadOptions o;
  o.csv_header = true;
  const std::string path = kData + "/valid.csv";
  auto r = read_csv(path, o);
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_FALSE(r->is_sparse());
  ASSERT_EQ(r->rows(), 3);
  EXPECT_EQ(r->cols(), 3);
  EXPECT_EQ(r->y, Eigen::Vector3d(1, 0, 7));
  DenseMatrix<double> expected(3, 3);
  expected << 0.5, 0, -2, 1e-3, 4, 0, 1, 2, 3;
  EXPECT_EQ(dense(*r), expected);

  o.force_sparse = true;
  auto s = read_csv(path, o);
  ASSERT_TRUE(s.is_ok()) << s.error();
  EXPECT_TRUE(s->is_sparse());
  EXPECT_EQ(s->nnz(), 7);
  EXPECT_EQ(dense(*s), expected);

  ReadOptions semi;
  semi.csv_delimiter = ';';
  auto t = parse_csv("1;2;3\n", "t.csv", semi);
  ASSERT_TRUE(t.is_ok()) << t.error();
  EXPECT_EQ(dense(*t), (DenseMatrix<double>(1, 2) << 2, 3).finished());
}

TEST(Csv, RejectsMalformedRowsWithFileAndLine) {
  ReadOptions header;
  header.csv_header = true;
  ReadOptions f4;
  f4.features = 4;
  ReadOptions small;
  small.max_dense_entries = 5;
  const struct {
    const char* text;
    ReadOptions options;
    const char* error;
  } cases[] = {
      {"1,2,3,4,5\n1,2,3,4,5\n1,2,3,4\n", {}, "x.csv:3: 4 fields, expected 5 as on line 1"},
      {"\n1,2,3\n1,2,3,4\n", {}, "x.csv:3: 4 fields, expected 3 as on line 2"},
      {"1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,2\n1,abc\n", {}, "x.csv:9: 'abc' is not a number"},
      {"label,a,b\n1,2,3\n",
       {},
       "x.csv:1: 'label' is not a number (set csv_header if line 1 is a header)"},
      {"h,a,b\n1,,3\n", header, "x.csv:2: field 2 is empty"},
      {"1,nan,3\n", {}, "x.csv:1: 'nan' is not finite"},
      {"-inf,1,3\n", {}, "x.csv:1: '-inf' is not finite"},
      {"1,1e400\n", {}, "x.csv:1: '1e400' is out of the range of a double"},
      {"1\n", {}, "x.csv:1: 1 field: a row needs a label and at least one feature"},
      {"1,2,3\n", f4, "x.csv:1: 2 features, expected 4 as set in ReadOptions::features"},
      {"1,2,3\n1,2,3\n1,2,3\n", small,
       "x.csv:1: 3 rows x 2 features exceed ReadOptions::max_dense_entries (5 values); read the "
       "data as sparse or raise the limit"},
      {"", {}, "x.csv: no samples (the data is empty)"},
      {"a,b,c\n\n", header, "x.csv: no samples (the data is empty or only a header)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(error_of(parse_csv(c.text, "x.csv", c.options)), c.error);
  }
}

// --- IDX -------------------------------------------------------------------------------------

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string images(std::uint32_t n, std::uint32_t h, std::uint32_t w, std::size_t pixels) {
  return be32(0x803) + be32(n) + be32(h) + be32(w) + std::string(pixels, '\x01');
}
std::string labels(std::uint32_t n, std::size_t bytes) {
  return be32(0x801) + be32(n) + std::string(bytes, '\x02');
}

TEST(Idx, ReadsGzipImagesAndPlainLabels) {
  auto r = read_idx(kData + "/tiny-images-idx3-ubyte.gz", kData + "/tiny-labels-idx1-ubyte");
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_FALSE(r->is_sparse());
  EXPECT_EQ(r->y, Eigen::Vector3d(9, 0, 3));
  DenseMatrix<double> expected(3, 6);
  expected << 0, 1, 2, 3, 4, 5, 255, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0;
  EXPECT_EQ(dense(*r), expected);

  ReadOptions o;
  o.force_sparse = true;
  o.precision = Precision::f32;
  auto s = read_idx(kData + "/tiny-images-idx3-ubyte.gz", kData + "/tiny-labels-idx1-ubyte", o);
  ASSERT_TRUE(s.is_ok()) << s.error();
  EXPECT_TRUE(s->is_sparse());
  EXPECT_EQ(s->nnz(), 7);
  EXPECT_EQ(dense(*s), expected);
}

TEST(Idx, RejectsMalformedFilesWithByteOffset) {
  ReadOptions f10;
  f10.features = 10;
  const struct {
    std::string images, labels;
    ReadOptions options;
    const char* error;
  } cases[] = {
      {be32(0x801) + be32(1) + be32(1) + be32(1) + "x",
       labels(1, 1),
       {},
       "i: byte 0: magic number 0x00000801 is not that of IDX images (0x00000803: unsigned bytes, "
       "3 dimensions)"},
      {images(1, 1, 1, 1),
       be32(0x803) + be32(1) + "x",
       {},
       "l: byte 0: magic number 0x00000803 is not that of IDX labels (0x00000801: unsigned bytes, "
       "1 dimension)"},
      {std::string(2, '\0'),
       labels(1, 1),
       {},
       "i: byte 2: the file ends inside the IDX magic number"},
      {be32(0x803) + be32(5) + std::string(1, '\0'),
       labels(5, 5),
       {},
       "i: byte 9: the file ends inside the 16-byte IDX header"},
      {images(0, 2, 2, 0), labels(0, 0), {}, "i: byte 4: the header gives 0 images (no data)"},
      {images(1, 0, 2, 0), labels(1, 1), {}, "i: byte 8: image size 0 x 2 has no pixels"},
      {images(3, 2, 2, 11),
       labels(3, 3),
       {},
       "i: byte 16: the header claims 3 images of 2 x 2 pixels (3 x 4 bytes), but only 11 bytes "
       "follow"},
      {images(2, 2, 2, 9),
       labels(2, 2),
       {},
       "i: byte 24: 1 bytes after the last image (wrong header or not an IDX file)"},
      {images(2, 2, 2, 8), labels(3, 3), {}, "l: byte 4: 3 labels, but i holds 2 images"},
      {images(2, 2, 2, 8),
       labels(2, 1),
       {},
       "l: byte 8: the header claims 2 labels, but only 1 bytes follow"},
      {images(2, 2, 2, 8),
       labels(2, 3),
       {},
       "l: byte 10: 1 bytes after the last label (wrong header or not an IDX file)"},
      {images(2, 2, 2, 8), "", {}, "l: byte 0: the file ends inside the IDX magic number"},
      {images(2, 2, 2, 8), labels(2, 2), f10,
       "i: byte 8: images have 4 pixels, but ReadOptions::features is 10"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.error);
    EXPECT_EQ(error_of(parse_idx(c.images, c.labels, "i", "l", c.options)), c.error);
  }
}

TEST(Idx, HeaderClaimingMoreThanPresentIsRejectedBeforeAllocating) {
  // 4294967295 images of 65535 x 32767 pixels: about 9e18 values. Allocating that first would
  // throw std::bad_alloc (or exhaust memory); the limit on dense entries is lifted so that only
  // the check against the bytes present can stop it.
  ReadOptions o;
  o.max_dense_entries = std::numeric_limits<Index>::max();
  const std::string img = be32(0x803) + be32(0xFFFFFFFF) + be32(65535) + be32(32767) + "abcd";
  const std::string lab = be32(0x801) + be32(0xFFFFFFFF) + "ab";
  AllocationProbe probe;
  Result<Dataset> r = Result<Dataset>::failure("not run");
  EXPECT_NO_THROW(r = parse_idx(img, lab, "i", "l", o));
  EXPECT_EQ(error_of(r),
            "i: byte 16: the header claims 4294967295 images of 65535 x 32767 pixels (4294967295 "
            "x 2147385345 bytes), but only 4 bytes follow");
  EXPECT_LT(probe.largest(), 1u << 20);
}

// --- files and gzip --------------------------------------------------------------------------

TEST(Files, GunzipsConcatenatedMembersAndReadsPlainFiles) {
  auto r = read_file_bytes(kData + "/two-members.gz");
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(*r, "hello world");
  auto raw = read_file_bytes(kData + "/two-members.gz", /*gunzip=*/false);
  ASSERT_TRUE(raw.is_ok());
  EXPECT_EQ(raw->size(), 51u);
  EXPECT_EQ(raw->substr(0, 2), "\x1f\x8b");
}

TEST(Files, MissingFileAndDirectoryAreErrors) {
  EXPECT_EQ(read_file_bytes(kData + "/absent.svm").error(),
            kData + "/absent.svm: cannot open: No such file or directory");
  EXPECT_EQ(read_file_bytes(kData).error(), kData + ": is a directory, not a file");
  EXPECT_EQ(read_libsvm(kData + "/absent.svm").error(),
            kData + "/absent.svm: cannot open: No such file or directory");
}

TEST(Files, TruncatedGzipIsRejectedWithItsOffset) {
  auto full = read_file_bytes(kData + "/zeros-8MiB.gz", false);
  ASSERT_TRUE(full.is_ok()) << full.error();
  const std::string cut = full->substr(0, full->size() / 2);
  const std::string path = temp_file("truncated.gz", cut);
  AllocationProbe probe;
  auto r = read_file_bytes(path);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error(), path + ": byte " + std::to_string(cut.size()) +
                           ": the gzip stream is truncated (the file ends before its end marker)");
  // The output buffer grows with what inflates, bounded by what the bytes present can give.
  EXPECT_LT(probe.largest(), std::size_t(cut.size()) * 1032 * 2 + (1u << 20));
  std::remove(path.c_str());
}

TEST(Files, GzipSizeTrailerIsOnlyAHint) {
  // A valid stream whose ISIZE trailer claims 4 GiB - 1: reserving that first would be a
  // decompression-bomb amplifier. zlib rejects the mismatching length.
  auto full = read_file_bytes(kData + "/valid.svm.gz", false);
  ASSERT_TRUE(full.is_ok()) << full.error();
  std::string bytes = *full;
  bytes.replace(bytes.size() - 4, 4, "\xff\xff\xff\xff");
  const std::string path = temp_file("isize.gz", bytes);
  AllocationProbe probe;
  auto r = read_file_bytes(path);
  EXPECT_EQ(r.is_ok() ? "" : r.error(), path + ": byte " + std::to_string(bytes.size()) +
                                            ": corrupt gzip data (incorrect length check)");
  EXPECT_LT(probe.largest(), 1u << 20);
  std::remove(path.c_str());
}

TEST(Files, DecompressionIsCappedByMaxBytes) {
  const std::string path = kData + "/zeros-8MiB.gz";
  AllocationProbe probe;
  auto r = read_file_bytes(path, true, 1 << 20);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error(), path +
                           ": the decompressed data exceeds the limit of 1048576 bytes "
                           "(ReadOptions::max_file_bytes); raise it if the file is genuine");
  EXPECT_LE(probe.largest(), (std::size_t(1) << 20) + 1);  // + std::string's terminator
  g_track = false;
  auto ok = read_file_bytes(path, true, 8 << 20);
  ASSERT_TRUE(ok.is_ok()) << ok.error();
  EXPECT_EQ(ok->size(), 8u << 20);
  EXPECT_EQ(ok->find_first_not_of('\0'), std::string::npos);
  // The raw file size is capped too.
  EXPECT_EQ(read_file_bytes(path, false, 100).error(),
            path +
                ": the file exceeds the limit of 100 bytes (ReadOptions::max_file_bytes); raise it "
                "if the file is genuine");
}

// --- Fashion-MNIST ---------------------------------------------------------------------------

TEST(FashionMnist, TrainSetLoadsWithKnownShapeAndLabels) {
  const std::string images = kFashion + "/train-images-idx3-ubyte.gz";
  const std::string labels_path = kFashion + "/train-labels-idx1-ubyte.gz";
  if (!std::ifstream(images)) FAIL() << "dataset-fashion-mnist is not installed (scripts/install-deps.sh installs it)";
  const auto start = std::chrono::steady_clock::now();
  auto r = read_idx(images, labels_path);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->rows(), 60000);
  EXPECT_EQ(r->cols(), 784);
  EXPECT_EQ(r->source, images);
  const double first[] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r->y[i], first[i]) << i;
  // Pixel sums computed independently (Python's gzip module).
  const auto& X = std::get<DenseMatrix<double>>(r->X);
  EXPECT_EQ(X.row(0).sum(), 76247.0);
  EXPECT_EQ(X.row(0).maxCoeff(), 255.0);
  EXPECT_EQ(X(0, 417), 255.0);
  EXPECT_EQ(X.row(59999).sum(), 16684.0);
  // Load time is reported, not asserted: speed claims live in bench/, not in unit tests.
  RecordProperty("load_seconds", std::to_string(seconds));
}

}  // namespace
}  // namespace dsaga
