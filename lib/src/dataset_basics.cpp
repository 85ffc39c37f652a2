// Dataset accessors. (Transforms, conversion and partitions live in dataset.cpp.)
#include "dsaga/dataset.hpp"

#include <type_traits>

namespace dsaga {

namespace {
template <class M>
constexpr bool kIsSparse = std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>;
}  // namespace

Index Dataset::rows() const {
  return std::visit([](const auto& X) { return static_cast<Index>(X.rows()); }, X);
}

Index Dataset::cols() const {
  return std::visit([](const auto& X) { return static_cast<Index>(X.cols()); }, X);
}

Index Dataset::nnz() const {
  return std::visit(
      [](const auto& X) -> Index {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) return static_cast<Index>(X.nonZeros());
        else return static_cast<Index>(X.size());
      },
      X);
}

bool Dataset::is_sparse() const {
  return std::visit([](const auto& X) { return kIsSparse<std::decay_t<decltype(X)>>; }, X);
}

Precision Dataset::precision() const {
  return std::visit(
      [](const auto& X) {
        using S = typename std::decay_t<decltype(X)>::Scalar;
        return std::is_same_v<S, float> ? Precision::f32 : Precision::f64;
      },
      X);
}

std::size_t Dataset::bytes() const {
  const std::size_t labels = static_cast<std::size_t>(y.size()) * sizeof(double);
  return labels + std::visit(
                      [](const auto& X) -> std::size_t {
                        using M = std::decay_t<decltype(X)>;
                        using S = typename M::Scalar;
                        if constexpr (kIsSparse<M>) {
                          return static_cast<std::size_t>(X.nonZeros()) *
                                     (sizeof(S) + sizeof(typename M::StorageIndex)) +
                                 static_cast<std::size_t>(X.outerSize() + 1) *
                                     sizeof(typename M::StorageIndex);
                        } else {
                          return static_cast<std::size_t>(X.size()) * sizeof(S);
                        }
                      },
                      X);
}

}  // namespace dsaga
