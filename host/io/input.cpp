// gmmdiff (io): opening and parsing the files a user gives gmmdiff (host/io/input.hpp).
#include "io/input.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "gmmdiff/error.hpp"

namespace gmmdiff {

namespace {

const char* kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

/// The text after nlohmann's "[json.exception.xxx.nnn] " prefix.
std::string without_prefix(const std::string& what) {
  const auto p = what.find("] ");
  return p == std::string::npos ? what : what.substr(p + 2);
}

/// Finds the first key that appears twice in one object while nlohmann parses (its callback sees
/// every key), and where: the JSON pointer of the object.
class DuplicateKeyFinder {
 public:
  bool on_event(nlohmann::json::parse_event_t ev, const nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (ev) {
      case E::object_start:
      case E::array_start:
        frames_.push_back(Frame{ev == E::object_start, child_name(), {}, {}, 0});
        break;
      case E::key: {
        Frame& f = frames_.back();
        f.key = parsed.is_string() ? parsed.get<std::string>() : parsed.dump();
        if (!f.keys.insert(f.key).second && found_.empty()) {
          found_ = f.key;
          where_ = pointer();
        }
        break;
      }
      case E::value:
        if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
        break;
      case E::object_end:
      case E::array_end:
        frames_.pop_back();
        if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
        break;
    }
    return true;
  }
  const std::string& key() const { return found_; }
  const std::string& where() const { return where_; }

 private:
  struct Frame {
    bool object;
    std::string name;  ///< this container's name in its parent ("" at the top)
    std::set<std::string> keys;
    std::string key;  ///< object: the last key read
    std::size_t index;  ///< array: the index of the next element
  };
  /// The name the container starting now has in its parent.
  std::string child_name() const {
    if (frames_.empty()) return "";
    const Frame& p = frames_.back();
    return p.object ? p.key : std::to_string(p.index);
  }
  /// The JSON pointer of the innermost object ("/" at the top level).
  std::string pointer() const {
    std::string s;
    for (std::size_t i = 1; i < frames_.size(); ++i) s += "/" + frames_[i].name;
    return s.empty() ? "/" : s;
  }
  std::vector<Frame> frames_;
  std::string found_, where_;
};

}  // namespace

int open_input_file(const std::string& path, const std::string& noun) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    if (e == EISDIR) throw Error(path + ": is a directory, not a " + noun);
    throw Error(path + ": cannot open the " + noun + " (" + std::strerror(e) + ")");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(path + ": cannot open the " + noun + " (" + std::strerror(e) + ")");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, not a " + noun);
    throw Error(path + ": is " + kind_of(st.st_mode) + ", not a " + noun + " (give a regular file)");
  }
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) (void)::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

std::string read_input_file(const std::string& path, const std::string& noun) {
  const int fd = open_input_file(path, noun);
  std::string content;
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      throw Error(path + ": cannot read the " + noun + " (" + std::strerror(e) + ")");
    }
    if (got == 0) break;
    content.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return content;
}

nlohmann::json parse_json(const std::string& text, const std::string& origin) {
  using json = nlohmann::json;
  DuplicateKeyFinder dup;
  json j;
  try {
    j = json::parse(text, [&dup](int, json::parse_event_t ev, json& parsed) { return dup.on_event(ev, parsed); });
  } catch (const json::parse_error& e) {
    throw Error(origin + ": malformed JSON at byte " + std::to_string(e.byte) + " (" + without_prefix(e.what()) + ")");
  } catch (const json::exception&) {  // out_of_range.406: a number such as 1e999
    throw Error(origin + ": a number does not fit in a double (it must be finite)");
  }
  if (!dup.key().empty())
    throw Error(origin + ": duplicate key \"" + dup.key() + "\"" + (dup.where() == "/" ? "" : " in " + dup.where()) +
                " (each key may appear once)");
  return j;
}

}  // namespace gmmdiff
