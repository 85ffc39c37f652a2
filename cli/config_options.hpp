// The command line of an option table (dsaga/options.hpp): one CLI11 option per row that has a
// flag, bound to the row's member, whose current value (default, or the --config file's) is the
// one --help shows and the one an absent flag leaves. Header-only; CLI11 stays out of libdsaga.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <deque>
#include <map>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "dsaga/options.hpp"

namespace dsaga::cli {

class ConfigOptions {
 public:
  // Adds the rows with a flag to `app`, or to groups[row.section] where the map names one.
  ConfigOptions(CLI::App& app, const std::vector<OptionSpec>& options,
                const std::map<std::string, CLI::App*>& groups = {}) {
    for (const OptionSpec& o : options) {
      if (o.flag == nullptr) continue;
      const auto group = groups.find(o.section);
      add(group == groups.end() ? app : *group->second, o);
    }
  }
  // CLI11 holds references into this object.
  ConfigOptions(const ConfigOptions&) = delete;
  ConfigOptions& operator=(const ConfigOptions&) = delete;

  // After parsing: the words given to text options (enums) turned into their values. The error
  // names the option ("--loss: unknown loss 'hinge': ...").
  Status apply() const {
    for (const Text& t : texts_)
      if (const Status s = t.ref.set(t.text); !s)
        return Status::error(t.name + ": " + s.message());
    return Status::ok();
  }

 private:
  struct Text {
    std::string name;  // the first flag, for errors
    TextRef ref;
    std::string text;
  };

  // One row on the command line: std::visit over its member.
  struct Add {
    ConfigOptions& self;
    CLI::App& app;
    const OptionSpec& o;
    void operator()(bool* member) const {
      app.add_flag(o.flag, *member, o.help)->capture_default_str();
    }
    template <class T>
    void operator()(T* member) const {
      CLI::Option* option = app.add_option(o.flag, *member, o.help);
      // A NaN default means "not given" (training.f_star): --help shows no default then.
      if constexpr (std::is_floating_point_v<T>) {
        if (!std::isnan(*member)) option->capture_default_str();
      } else {
        option->capture_default_str();
      }
      // CLI11 would otherwise wrap a negative value around to a huge unsigned one.
      if (std::is_unsigned_v<T> || o.check == OptionCheck::non_negative)
        option->check(CLI::NonNegativeNumber);
      if (o.check == OptionCheck::zero_or_one) option->check(CLI::IsMember({0, 1}));
    }
    void operator()(std::vector<double>* member) const {
      app.add_option(o.flag, *member, o.help)->delimiter(',');
    }
    void operator()(const TextRef& ref) const {
      std::string name = o.flag;
      name = name.substr(0, name.find(','));
      // A deque: CLI11 keeps a reference to each text.
      Text& t = self.texts_.emplace_back(Text{name, ref, ref.get()});
      app.add_option(o.flag, t.text, o.help)->capture_default_str();
    }
    void operator()(const MebibyteRef&) const {}  // file only
  };

  void add(CLI::App& app, const OptionSpec& o) { std::visit(Add{*this, app, o}, o.value); }

  std::deque<Text> texts_;
};

}  // namespace dsaga::cli
