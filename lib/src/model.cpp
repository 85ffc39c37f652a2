// Model files and their liblinear translation (model.hpp).
#include "dsaga/model.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>

#include "dsaga/files.hpp"
#include "dsaga/io.hpp"
#include "dsaga/report.hpp"

namespace dsaga {

namespace {

// Bounds a reader applies before trusting the header: no more classes than a softmax over
// 16-bit class ids, and the weights must all be in the file anyway (checked as they are read).
constexpr long long kMaxClasses = 65535;

std::string number(double v) {
  if (std::isnan(v)) return "nan";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string join(const std::vector<double>& values) {
  std::string s;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) s += ',';
    s += number(values[i]);
  }
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_integer(std::string_view s, long long& out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Line-by-line reader over the file's text that knows the line number for messages.
class Lines {
 public:
  Lines(std::string_view text, const std::string& name) : text_(text), name_(name) {}
  // The next line that is neither blank nor a comment, trimmed; false at the end.
  bool next(std::string_view& line) {
    while (pos_ < text_.size()) {
      const std::size_t end = text_.find('\n', pos_);
      const std::size_t stop = end == std::string_view::npos ? text_.size() : end;
      line = trim(text_.substr(pos_, stop - pos_));
      pos_ = stop + 1;
      ++number_;
      if (!line.empty() && line.front() != '#') return true;
    }
    return false;
  }
  Status error(const std::string& what) const {
    return Status::error(name_ + ":" + std::to_string(number_) + ": " + what);
  }
  int number() const { return number_; }

 private:
  std::string_view text_;
  const std::string& name_;
  std::size_t pos_ = 0;
  int number_ = 0;
};

Status parse_yes_no(const Lines& lines, const std::string& key, std::string_view value, bool& out) {
  if (value == "yes") out = true;
  else if (value == "no") out = false;
  else return lines.error(key + ": '" + std::string(value) + "', expected yes or no");
  return Status::ok();
}

}  // namespace

Result<std::string> format_model(const Model& m) {
  const int C = m.objective.classes;
  if (C < 1 || m.features < 1 || m.w.size() != m.features * C)
    return Result<std::string>::failure(
        "model has " + std::to_string(m.w.size()) + " weights, expected features (" +
        std::to_string(m.features) + ") x classes (" + std::to_string(C) + ")");
  std::string out;
  out.reserve(static_cast<std::size_t>(m.w.size()) * 25 + 1024);
  out += "# dsaga model: F(w) = (1/N) sum_i loss(y_i, <x_i, w>) + lambda/2 ||w||^2\n";
  out += "# Apply with dsaga-predict --model FILE and the data options the agents trained with;\n";
  out += "# z = <x, w> over rows prepared by them (read, scale, normalize, bias last). Format:\n";
  out += "# lib/include/dsaga/model.hpp. 'w': features lines of classes weights each.\n";
  if (!m.data_recorded)
    out += "# data-options unknown: the hub never sees the agents' data options; give\n"
           "# dsaga-predict the agents' (--scale, --normalize, --bias, --positive).\n";
  out += std::string("format ") + kModelFormat + "\n";
  out += std::string("loss ") + to_string(m.objective.loss) + "\n";
  out += "classes " + std::to_string(C) + "\n";
  out += "features " + std::to_string(m.features) + "\n";
  out += "lambda " + number(m.objective.lambda) + "\n";
  out += "round " + std::to_string(m.round) + "\n";
  out += "objective " + number(m.objective_value) + "\n";
  out += std::string("data-options ") + (m.data_recorded ? "recorded" : "unknown") + "\n";
  if (m.data_recorded) {
    out += "scale " + number(m.data.scale) + "\n";
    out += std::string("normalize ") + (m.data.normalize_rows ? "yes" : "no") + "\n";
    out += std::string("bias ") + (m.data.bias ? "yes" : "no") + "\n";
    if (m.objective.loss == Loss::logistic)
      out += "positive " + (m.data.positive.empty() ? std::string("default") : join(m.data.positive)) +
             "\n";
  }
  out += "w\n";
  for (Index k = 0; k < m.features; ++k) {
    for (int c = 0; c < C; ++c) {
      if (c) out += ' ';
      out += number(m.w[k * C + c]);
    }
    out += '\n';
  }
  return out;
}

Status save_model(const std::string& path, const Model& model) {
  auto text = format_model(model);
  if (!text) return Status::error(path + ": " + text.error());
  return write_file_atomic(path, *text);
}

Status save_model(const std::string& path, const Objective& objective, Index features,
                  const Eigen::VectorXd& w, std::uint64_t round, double objective_value) {
  Model m;
  m.objective = objective;
  m.features = features;
  m.w = w;
  m.round = round;
  m.objective_value = objective_value;
  return save_model(path, m);
}

Result<Model> load_model(const std::string& path) {
  auto bytes = read_file_bytes(path);
  if (!bytes) return bytes.status();
  return parse_model(*bytes, path);
}

Result<Model> parse_model(std::string_view text, const std::string& name) {
  Lines lines(text, name);
  std::string_view line;
  Model m;
  if (!lines.next(line))
    return Result<Model>::failure(name + ": empty, not a dsaga model (no 'format' line)");
  if (line == "format dsaga-model-1") m.format_version = 1;
  else if (line == "format dsaga-model-2") m.format_version = 2;
  else
    return lines.error("'" + std::string(line.substr(0, 80)) +
                       "': not a model this release reads (expected 'format dsaga-model-2' or "
                       "'format dsaga-model-1' as the first line)");
  bool have_loss = false, have_classes = false, have_features = false, have_data = false;
  bool have_scale = false, have_normalize = false, have_bias = false, have_positive = false;
  long long classes = 0, features = 0;
  // Header: "key value" lines up to "w".
  for (;;) {
    if (!lines.next(line)) return lines.error("the file ends before the 'w' line");
    if (line == "w") break;
    const std::size_t space = line.find_first_of(" \t");
    const std::string key(line.substr(0, space));
    const std::string_view value =
        space == std::string_view::npos ? std::string_view() : trim(line.substr(space + 1));
    const bool v2 = m.format_version >= 2;
    if (key == "loss") {
      auto loss = parse_loss(std::string(value));
      if (!loss) return lines.error("loss: " + loss.error());
      m.objective.loss = *loss;
      have_loss = true;
    } else if (key == "classes") {
      if (!parse_integer(value, classes) || classes < 1 || classes > kMaxClasses)
        return lines.error("classes: '" + std::string(value) + "' is not a number of classes (1.." +
                           std::to_string(kMaxClasses) + ")");
      have_classes = true;
    } else if (key == "features") {
      if (!parse_integer(value, features) || features < 1 || features > (Index(1) << 40))
        return lines.error("features: '" + std::string(value) + "' is not a width (>= 1)");
      have_features = true;
    } else if (key == "lambda") {
      if (!parse_double(value, m.objective.lambda))
        return lines.error("lambda: '" + std::string(value) + "' is not a number");
    } else if (key == "round") {
      long long r = 0;
      if (!parse_integer(value, r) || r < 0)
        return lines.error("round: '" + std::string(value) + "' is not a round number");
      m.round = static_cast<std::uint64_t>(r);
    } else if (key == "objective") {
      if (!parse_double(value, m.objective_value))
        return lines.error("objective: '" + std::string(value) + "' is not a number (or nan)");
    } else if (v2 && key == "data-options") {
      if (value == "recorded") m.data_recorded = true;
      else if (value == "unknown") m.data_recorded = false;
      else return lines.error("data-options: '" + std::string(value) + "', expected recorded or unknown");
      have_data = true;
    } else if (v2 && key == "scale") {
      if (!parse_double(value, m.data.scale) || !std::isfinite(m.data.scale))
        return lines.error("scale: '" + std::string(value) + "' is not a finite number");
      have_scale = true;
    } else if (v2 && key == "normalize") {
      if (Status s = parse_yes_no(lines, key, value, m.data.normalize_rows); !s) return s;
      have_normalize = true;
    } else if (v2 && key == "bias") {
      if (Status s = parse_yes_no(lines, key, value, m.data.bias); !s) return s;
      have_bias = true;
    } else if (v2 && key == "positive") {
      if (value != "default") {
        std::string_view rest = value;
        while (!rest.empty()) {
          const std::size_t comma = rest.find(',');
          double label = 0;
          if (!parse_double(trim(rest.substr(0, comma)), label) || !std::isfinite(label))
            return lines.error("positive: '" + std::string(value) +
                               "' is not 'default' or a comma-separated list of labels");
          m.data.positive.push_back(label);
          rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        if (m.data.positive.empty()) return lines.error("positive: empty (write 'default')");
      }
      have_positive = true;
    } else {
      return lines.error("'" + key + "' is not a key of " +
                         (v2 ? std::string("dsaga-model-2") : std::string("dsaga-model-1")));
    }
  }
  const auto missing = [&](const char* key) {
    return lines.error(std::string("the header has no '") + key + "' line before 'w'");
  };
  if (!have_loss) return missing("loss");
  if (!have_classes) return missing("classes");
  if (!have_features) return missing("features");
  if (m.format_version >= 2 && !have_data) return missing("data-options");
  if (m.data_recorded) {
    if (!have_scale) return missing("scale");
    if (!have_normalize) return missing("normalize");
    if (!have_bias) return missing("bias");
    if (m.objective.loss == Loss::logistic && !have_positive) return missing("positive");
  } else if (have_scale || have_normalize || have_bias || have_positive) {
    return lines.error("data options given with 'data-options unknown'");
  }
  const bool multinomial = m.objective.loss == Loss::multinomial;
  if (multinomial ? classes < 2 : classes != 1)
    return lines.error("classes " + std::to_string(classes) + " does not fit the " +
                       to_string(m.objective.loss) + " loss (" +
                       (multinomial ? "at least 2" : "1") + " expected)");
  m.objective.classes = static_cast<int>(classes);
  m.features = features;

  // Weights: never reserved from the header's numbers, which may be hostile.
  std::vector<double> w;
  Index rows = 0;
  while (lines.next(line)) {
    if (rows == features)
      return lines.error("more than features (" + std::to_string(features) + ") weight lines");
    std::string_view rest = line;
    long long count = 0;
    while (!rest.empty()) {
      const std::size_t space = rest.find_first_of(" \t");
      const std::string_view token = rest.substr(0, space);
      double v = 0;
      if (!parse_double(token, v) || !std::isfinite(v))
        return lines.error("weight '" + std::string(token.substr(0, 40)) +
                           "' is not a finite number");
      w.push_back(v);
      ++count;
      rest = space == std::string_view::npos ? std::string_view() : trim(rest.substr(space));
    }
    if (count != classes)
      return lines.error(std::to_string(count) + " weights on the line of feature " +
                         std::to_string(rows) + ", expected classes = " + std::to_string(classes));
    ++rows;
  }
  if (rows != features)
    return Result<Model>::failure(name + ": " + std::to_string(rows) +
                                  " weight lines after 'w', expected features = " +
                                  std::to_string(features));
  m.w = Eigen::Map<const Eigen::VectorXd>(w.data(), static_cast<Index>(w.size()));
  return m;
}

Result<std::string> liblinear_model_text(const Model& m, const DataTransform& t) {
  using R = Result<std::string>;
  if (m.objective.loss == Loss::multinomial)
    return R::failure("a multinomial model has no liblinear equivalent (liblinear's multi-class "
                      "models are one-vs-rest, not softmax); only logistic and squared export");
  if (t.normalize_rows)
    return R::failure("--normalize: liblinear-predict reads raw rows and cannot scale each to "
                      "unit norm; train without --normalize to export");
  if (!std::isfinite(t.scale))
    return R::failure("--scale: not finite");
  const Index D = m.features;
  if (m.w.size() != D || D < (t.bias ? 2 : 1))
    return R::failure("model has " + std::to_string(m.w.size()) + " weights for " +
                      std::to_string(D) + " features" + (t.bias ? " and a bias column" : ""));
  const Index nr_feature = t.bias ? D - 1 : D;
  std::string out;
  out.reserve(static_cast<std::size_t>(D) * 26 + 128);
  if (m.objective.loss == Loss::logistic) {
    // liblinear: label[0] is predicted when w.x > 0, so +1 goes first and w keeps its sign.
    out += "solver_type L2R_LR\nnr_class 2\nlabel 1 -1\n";
  } else {
    out += "solver_type L2R_L2LOSS_SVR\nnr_class 2\n";
  }
  out += "nr_feature " + std::to_string(nr_feature) + "\n";
  // liblinear appends a feature of value `bias` at index nr_feature + 1 to every row; dsaga's
  // bias column is a constant 1 after scaling, so its weight is copied unscaled.
  out += std::string("bias ") + (t.bias ? "1" : "-1") + "\n";
  out += "w\n";
  for (Index k = 0; k < D; ++k) {
    const double v = k < nr_feature ? t.scale * m.w[k] : m.w[k];
    out += number(v);
    out += " \n";  // liblinear's own layout: every weight followed by a space
  }
  return out;
}

}  // namespace dsaga
