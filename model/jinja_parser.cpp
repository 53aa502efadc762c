// jinja2's lexer and parser, transcribed for the chat-template subset. The lexer follows
// jinja2.lexer.Lexer.tokeniter under trim_blocks=True, lstrip_blocks=True (transformers'
// environment): newlines normalised, one trailing newline dropped, `{%-`/`-%}` strip all
// whitespace, `%}`/`#}` eat one following newline, `{%`/`{#` eat the spaces and tabs before
// them on their line. The parser follows jinja2.parser.Parser's precedence and forms.
#include "model/jinja_parser.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "kernels/error.h"

namespace cohort::jinja {

namespace {

const std::set<std::string> kFilters = {
    "abs",    "capitalize", "count",   "d",       "default", "e",      "escape",     "first", "float",
    "indent", "int",        "items",   "join",    "last",    "length", "list",       "lower", "map",
    "reject", "rejectattr", "replace", "reverse", "safe",    "select", "selectattr", "sort",  "string",
    "sum",    "title",      "tojson",  "trim",    "unique",  "upper",  "min",        "max",
};

const std::set<std::string> kTests = {
    "boolean", "callable", "defined", "divisibleby", "eq",       "equalto",  "even",   "false", "float",
    "ge",      "gt",       "in",      "integer",     "iterable", "le",       "lower",  "lt",    "mapping",
    "ne",      "none",     "number",  "odd",         "sameas",   "sequence", "string", "true",  "undefined",
    "upper",   "==",       "!=",      "<",           "<=",       ">",        ">=",
};

// Statements jinja2 knows that cohort's interpreter does not implement.
const std::set<std::string> kUnsupportedStatements = {
    "block", "extends", "include", "import", "from", "call", "filter", "with", "autoescape", "raw", "do",
};

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Data text, Name, Op, decoded String
  int line = 0;
  int64_t int_value = 0;
  double float_value = 0;
};

const char* describe(Tok t) {
  switch (t) {
    case Tok::Data:
      return "template data";
    case Tok::VarBegin:
      return "'{{'";
    case Tok::VarEnd:
      return "end of print statement";
    case Tok::BlockBegin:
      return "'{%'";
    case Tok::BlockEnd:
      return "end of statement block";
    case Tok::Name:
      return "name";
    case Tok::String:
      return "string";
    case Tok::Int:
      return "integer";
    case Tok::Float:
      return "float";
    case Tok::Op:
      return "operator";
    case Tok::Eof:
      return "end of template";
  }
  return "token";
}

[[noreturn]] void fail(const std::string& origin, int line, const std::string& what) {
  throw Error(origin + ":" + std::to_string(line) + ": " + what);
}

// Byte length of the UTF-8 code point at s[pos] if it is whitespace (Python's \s), else 0.
size_t whitespace_at(const std::string& s, size_t pos) {
  const auto b = static_cast<unsigned char>(s[pos]);
  if (b < 0x80) return py_isspace(b) ? 1 : 0;
  size_t len = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || pos + len > s.size()) return 0;
  try {
    const std::u32string c = utf8_decode(s.substr(pos, len));
    return c.size() == 1 && py_isspace(c[0]) ? len : 0;
  } catch (const EvalError&) {
    return 0;
  }
}

// Python's str.rstrip() with no argument.
std::string py_rstrip(const std::string& s) {
  std::u32string cps = utf8_decode(s);
  while (!cps.empty() && py_isspace(cps.back())) cps.pop_back();
  return utf8_encode(cps);
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& origin) : origin_(origin) {
    // jinja2: newlines normalised to \n, and (keep_trailing_newline=False) one final one dropped.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    try {
      utf8_decode(src_);
    } catch (const EvalError&) {
      fail(origin_, 1, "the template is not valid UTF-8");
    }
  }

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t start = std::string::npos;
      for (const char* open : {"{{", "{%", "{#"}) start = std::min(start, src_.find(open, pos_));
      if (start == std::string::npos) {
        emit_data(src_.substr(pos_));
        advance_to(src_.size());
        break;
      }
      const char kind = src_[start + 1];
      const char sign =
          start + 2 < src_.size() && (src_[start + 2] == '-' || src_[start + 2] == '+') ? src_[start + 2] : 0;
      std::string text = src_.substr(pos_, start - pos_);
      if (sign == '-') {
        text = py_rstrip(text);
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks: not for {{ }}
        const size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((l_pos > 0 || line_starting) && text.find_first_not_of(" \t", l_pos) == std::string::npos) {
          text.resize(l_pos);
        }
      }
      emit_data(text);
      advance_to(start + 2 + (sign ? 1 : 0));
      if (kind == '#') {
        line_starting = lex_comment();
      } else {
        if (kind == '%') refuse_raw();
        tokens_.push_back({kind == '{' ? Tok::VarBegin : Tok::BlockBegin, {}, line_});
        line_starting = lex_tag(kind == '{');
      }
    }
    tokens_.push_back({Tok::Eof, {}, line_});
    return std::move(tokens_);
  }

 private:
  void emit_data(std::string text) {
    if (!text.empty()) tokens_.push_back({Tok::Data, std::move(text), line_});
  }

  void advance_to(size_t pos) {
    line_ += static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                         src_.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
    pos_ = pos;
  }

  size_t skip_whitespace(size_t pos) const {
    while (pos < src_.size()) {
      const size_t n = whitespace_at(src_, pos);
      if (!n) break;
      pos += n;
    }
    return pos;
  }

  // Returns whether the comment's match ended with a newline (jinja2's line_starting).
  bool lex_comment() {
    const size_t q = src_.find("#}", pos_);
    if (q == std::string::npos) fail(origin_, line_, "missing end of comment tag");
    size_t end = q + 2;
    if (q > pos_ && src_[q - 1] == '-') {
      end = skip_whitespace(end);
    } else if (q > pos_ && src_[q - 1] == '+') {
      // no trimming
    } else if (end < src_.size() && src_[end] == '\n') {
      ++end;  // trim_blocks
    }
    advance_to(end);
    return src_[end - 1] == '\n';
  }

  void refuse_raw() {
    size_t p = skip_whitespace(pos_);
    if (src_.compare(p, 3, "raw") == 0) {
      const size_t after = p + 3;
      if (after >= src_.size() || whitespace_at(src_, after) || src_[after] == '-' || src_[after] == '%') {
        fail(origin_, line_, "unsupported Jinja construct: {% raw %}");
      }
    }
  }

  // Lexes the inside of {{ }} or {% %} through its end tag; returns line_starting.
  bool lex_tag(bool variable) {
    std::vector<char> balance;
    while (true) {
      if (balance.empty()) {
        if (variable) {
          if (src_.compare(pos_, 3, "-}}") == 0) return end_tag(Tok::VarEnd, skip_whitespace(pos_ + 3));
          if (src_.compare(pos_, 2, "}}") == 0) return end_tag(Tok::VarEnd, pos_ + 2);
        } else {
          if (src_.compare(pos_, 3, "+%}") == 0) return end_tag(Tok::BlockEnd, pos_ + 3);
          if (src_.compare(pos_, 3, "-%}") == 0) return end_tag(Tok::BlockEnd, skip_whitespace(pos_ + 3));
          if (src_.compare(pos_, 2, "%}") == 0) {
            size_t end = pos_ + 2;
            if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
            return end_tag(Tok::BlockEnd, end);
          }
        }
      }
      const size_t ws = skip_whitespace(pos_);
      if (ws != pos_) {
        advance_to(ws);
        continue;
      }
      if (pos_ >= src_.size()) fail(origin_, line_, "unexpected end of template inside a tag");
      const char c = src_[pos_];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number();
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens_.push_back({Tok::Name, src_.substr(pos_, e - pos_), line_});
        advance_to(e);
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        lex_operator(balance);
      }
    }
  }

  bool end_tag(Tok type, size_t end) {
    tokens_.push_back({type, {}, line_});
    advance_to(end);
    return src_[end - 1] == '\n';
  }

  size_t scan_digits(size_t p) const {  // jinja2's (\d+_)*\d+
    size_t q = p;
    while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
      ++q;
      if (q + 1 < src_.size() && src_[q] == '_' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) ++q;
    }
    return q;
  }

  void lex_number() {
    const size_t digits_end = scan_digits(pos_);
    size_t end = digits_end;
    bool is_float = false;
    if (pos_ == 0 || src_[pos_ - 1] != '.') {  // float_re's (?<!\.)
      size_t q = digits_end;
      if (q + 1 < src_.size() && src_[q] == '.' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
        q = scan_digits(q + 1);
        is_float = true;
      }
      if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t r = q + 1;
        if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
        const size_t r2 = scan_digits(r);
        if (r2 > r) {
          q = r2;
          is_float = true;
        }
      }
      if (is_float) end = q;
    }
    if (!is_float && src_[pos_] == '0' && end < src_.size() &&
        std::string("xXoObB").find(src_[end]) != std::string::npos) {
      fail(origin_, line_, "unsupported Jinja construct: integer literal with a base prefix");
    }
    std::string text = src_.substr(pos_, end - pos_);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    Token t{is_float ? Tok::Float : Tok::Int, text, line_};
    errno = 0;
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(origin_, line_, "integer literal " + text + " does not fit int64");
    }
    tokens_.push_back(std::move(t));
    advance_to(end);
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // A string literal, decoded as jinja2 does: raw.encode("ascii", "backslashreplace")
  // .decode("unicode-escape") -- Python's escapes, non-ASCII characters kept as they are.
  void lex_string() {
    const char quote = src_[pos_];
    const int line = line_;
    size_t e = pos_ + 1;
    while (e < src_.size() && src_[e] != quote) e += src_[e] == '\\' ? 2 : 1;
    if (e >= src_.size()) fail(origin_, line, "unterminated string literal");
    const std::u32string raw = utf8_decode(src_.substr(pos_ + 1, e - pos_ - 1));
    std::string out;
    for (size_t i = 0; i < raw.size(); ++i) {
      const char32_t c = raw[i];
      if (c != '\\') {
        utf8_append(out, c);
        continue;
      }
      const char32_t d = raw[++i];
      if (d >= 0x80) {  // backslashreplace made it \xNN / \uNNNN / \UNNNNNNNN; "\\" then decodes to "\"
        out.push_back('\\');
        char buf[16];
        std::snprintf(buf, sizeof buf, d <= 0xFF ? "x%02x" : d <= 0xFFFF ? "u%04x" : "U%08x", static_cast<unsigned>(d));
        out += buf;
        continue;
      }
      auto read_hex = [&](int n, const char* name) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
          const int h = i + 1 < raw.size() && raw[i + 1] < 0x80 ? hex_value(static_cast<char>(raw[i + 1])) : -1;
          if (h < 0) fail(origin_, line, std::string("truncated ") + name + " escape in a string literal");
          v = v * 16 + static_cast<uint32_t>(h);
          ++i;
        }
        return v;
      };
      switch (d) {
        case '\n':
          break;  // line continuation
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
          utf8_append(out, read_hex(2, "\\xXX"));
          break;
        case 'u':
        case 'U': {
          const uint32_t v = read_hex(d == 'u' ? 4 : 8, d == 'u' ? "\\uXXXX" : "\\UXXXXXXXX");
          if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
            fail(origin_, line, "string literal escape is not a valid Unicode scalar value");
          }
          utf8_append(out, v);
          break;
        }
        case 'N':
          fail(origin_, line, "unsupported Jinja construct: \\N{...} escape in a string literal");
        default:
          if (d >= '0' && d <= '7') {
            uint32_t v = d - '0';
            for (int k = 0; k < 2 && i + 1 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '7'; ++k) {
              v = v * 8 + (raw[++i] - '0');
            }
            utf8_append(out, v);
          } else {
            out.push_back('\\');  // unknown escapes stay as written
            out.push_back(static_cast<char>(d));
          }
      }
    }
    tokens_.push_back({Tok::String, std::move(out), line});
    advance_to(e + 1);
  }

  void lex_operator(std::vector<char>& balance) {
    static const char* two[] = {"**", "//", "==", "!=", ">=", "<="};
    for (const char* op : two) {
      if (src_.compare(pos_, 2, op) == 0) {
        tokens_.push_back({Tok::Op, op, line_});
        advance_to(pos_ + 2);
        return;
      }
    }
    const char c = src_[pos_];
    if (std::string("+-/*%~[](){}><=.:|,;").find(c) == std::string::npos) {
      fail(origin_, line_, std::string("unexpected character '") + c + "' inside a tag");
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) fail(origin_, line_, std::string("unexpected '") + c + "'");
      if (balance.back() != c) {
        fail(origin_, line_, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
      }
      balance.pop_back();
    }
    tokens_.push_back({Tok::Op, std::string(1, c), line_});
    advance_to(pos_ + 1);
  }

  std::string src_;
  const std::string& origin_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& origin, const ParseLimits& limits)
      : tokens_(std::move(tokens)), origin_(origin), limits_(limits) {}

  Body parse() {
    Body body = subparse({});
    if (cur().type != Tok::Eof) error("unexpected " + token_text(cur()));
    return body;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return tokens_[pos_]; }
  const Token& look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == Tok::Name && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  static std::string token_text(const Token& t) {
    if (t.type == Tok::Op || t.type == Tok::Name) return "'" + t.text + "'";
    return describe(t.type);
  }
  [[noreturn]] void error(const std::string& what) const { fail(origin_, cur().line, what); }
  [[noreturn]] void unsupported(const std::string& construct) const {
    fail(origin_, cur().line, "unsupported Jinja construct: " + construct);
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(std::string("expected '") + op + "', got " + token_text(cur()));
  }
  void expect(Tok type) {
    if (cur().type != type) error(std::string("expected ") + describe(type) + ", got " + token_text(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error("expected a name, got " + token_text(cur()));
    return next().text;
  }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.limits_.max_nesting) p.error("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Parses until a `{% NAME` with NAME in end_names (left as the current token), or the end.
  Body subparse(const std::set<std::string>& end_names) {
    DepthGuard guard(*this);
    Body body;
    while (cur().type != Tok::Eof) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Data;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::VarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Print;
        s->line = cur().line;
        s->expr = parse_tuple(true, false, {});
        expect(Tok::VarEnd);
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        next();
        if (cur().type == Tok::Name && end_names.count(cur().text)) return body;
        body.push_back(parse_statement());
        expect(Tok::BlockEnd);
      } else {
        error("unexpected " + token_text(t));
      }
    }
    if (!end_names.empty()) {
      std::string names;
      for (const auto& n : end_names) names += (names.empty() ? "'" : " or '") + n + "'";
      error("unexpected end of template, expected " + names);
    }
    return body;
  }

  // After a statement's header: an optional ':' then the block end, then the body.
  Body parse_statements(const std::set<std::string>& end_names, bool drop_needle) {
    skip_op(":");
    expect(Tok::BlockEnd);
    Body body = subparse(end_names);
    if (cur().type == Tok::Eof) error("unexpected end of template");
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    if (cur().type != Tok::Name) error("tag name expected, got " + token_text(cur()));
    const std::string& name = cur().text;
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    if (name == "for") {
      parse_for(*s);
    } else if (name == "if") {
      parse_if(*s);
    } else if (name == "set") {
      parse_set(*s);
    } else if (name == "macro") {
      parse_macro(*s);
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error("'" + name + "' outside of a loop");
      s->kind = name == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      next();
    } else if (name == "generation") {
      next();
      s->kind = Stmt::Kind::Generation;
      s->body = parse_statements({"endgeneration"}, true);
    } else if (kUnsupportedStatements.count(name)) {
      unsupported("{% " + name + " %}");
    } else if (name.rfind("end", 0) == 0 || name == "else" || name == "elif") {
      error("unexpected '" + name + "'");
    } else {
      error("unknown statement '" + name + "'");
    }
    return s;
  }

  void parse_for(Stmt& s) {
    next();  // for
    s.kind = Stmt::Kind::For;
    parse_assign_target(s, false, "in");
    if (!skip_name("in")) error("expected 'in', got " + token_text(cur()));
    s.expr = parse_tuple(false, false, "recursive");
    if (skip_name("if")) s.filter = parse_expression(true);
    if (is_name("recursive")) unsupported("recursive for loop");
    ++loop_depth_;
    s.body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().text == "else") s.else_body = parse_statements({"endfor"}, true);
  }

  void parse_if(Stmt& s) {
    next();  // if
    s.kind = Stmt::Kind::If;
    while (true) {
      ExprPtr cond = parse_tuple(false, false, {});
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s.branches.emplace_back(std::move(cond), std::move(body));
      const std::string which = next().text;
      if (which == "elif") continue;
      if (which == "else") s.else_body = parse_statements({"endif"}, true);
      break;
    }
  }

  void parse_set(Stmt& s) {
    next();  // set
    if (cur().type == Tok::Name && look().type == Tok::Op && look().text == ".") {
      s.targets.push_back(next().text);
      next();  // .
      s.target_attr = expect_name();
    } else {
      parse_assign_target(s, false, {});
    }
    if (skip_op("=")) {
      s.kind = Stmt::Kind::Set;
      s.expr = parse_tuple(true, false, {});
      return;
    }
    if (is_op("|")) unsupported("filtered block {% set ... | filter %}");
    if (!s.target_attr.empty() || s.unpack) error("a block set needs a single name");
    s.kind = Stmt::Kind::SetBlock;
    s.body = parse_statements({"endset"}, true);
  }

  void parse_macro(Stmt& s) {
    next();  // macro
    s.kind = Stmt::Kind::Macro;
    s.name = expect_name();
    expect_op("(");
    bool have_default = false;
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      s.params.push_back(expect_name());
      if (skip_op("=")) {
        s.defaults.push_back(parse_expression(true));
        have_default = true;
      } else {
        if (have_default) error("non-default argument follows default argument");
        s.defaults.push_back(nullptr);
      }
    }
    expect_op(")");
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    ++macro_depth_;
    s.body = parse_statements({"endmacro"}, true);
    --macro_depth_;
    loop_depth_ = saved_loops;
  }

  // Names, or a tuple of names (`for k, v in ...`); `extra_end` ends the tuple.
  void parse_assign_target(Stmt& s, bool name_only, const std::string& extra_end) {
    while (true) {
      if (cur().type != Tok::Name) error("expected a name to assign to, got " + token_text(cur()));
      const std::string& n = cur().text;
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None") {
        error("cannot assign to '" + n + "'");
      }
      s.targets.push_back(next().text);
      if (name_only || !skip_op(",")) break;
      s.unpack = true;
      if (cur().type == Tok::BlockEnd || (!extra_end.empty() && is_name(extra_end.c_str())) || is_op("=")) break;
    }
  }

  // ---- expressions (jinja2.parser precedence) ----

  bool tuple_end(const std::string& extra_end) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) return true;
    return !extra_end.empty() && is_name(extra_end.c_str());
  }

  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens, const std::string& extra_end) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) error("expected an expression, got " + token_text(cur()));
    }
    auto e = make(Expr::Kind::Tuple, line);
    e->children = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    DepthGuard guard(*this);
    ExprPtr expr1 = parse_or();
    while (is_name("if")) {
      const int line = next().line;
      ExprPtr expr2 = parse_or();
      ExprPtr expr3 = skip_name("else") ? parse_condexpr() : nullptr;
      auto e = make(Expr::Kind::CondExpr, line);
      e->children.push_back(std::move(expr1));
      e->children.push_back(std::move(expr2));
      e->children.push_back(std::move(expr3));
      expr1 = std::move(e);
    }
    return expr1;
  }

  ExprPtr binary(Expr::Kind kind, int line, ExprPtr left, ExprPtr right, std::string op = {}) {
    auto e = make(kind, line);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const int line = next().line;
      left = binary(Expr::Kind::Or, line, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const int line = next().line;
      left = binary(Expr::Kind::And, line, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto e = make(Expr::Kind::Not, next().line);
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        ops.push_back(next().text);
      } else if (skip_name("in")) {
        ops.push_back("in");
      } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
        next();
        next();
        ops.push_back("notin");
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = make(Expr::Kind::Compare, line);
    e->children.push_back(std::move(first));
    for (auto& o : operands) e->children.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      left = binary(Expr::Kind::Binary, t.line, std::move(left), parse_concat(), t.text);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const int line = next().line;
      left = binary(Expr::Kind::Binary, line, std::move(left), parse_math2(), "~");
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      left = binary(Expr::Kind::Binary, t.line, std::move(left), parse_pow(), t.text);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const int line = next().line;
      left = binary(Expr::Kind::Binary, line, std::move(left), parse_unary(true), "**");
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      node = make(Expr::Kind::Unary, t.line);
      node->name = t.text;
      node->children.push_back(parse_unary(false));
    } else {
      node = parse_postfix(parse_primary());
    }
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(*this);
    const Token& t = cur();
    const int line = t.line;
    if (t.type == Tok::Name) {
      const std::string n = next().text;
      auto e = make(Expr::Kind::Const, line);
      if (n == "true" || n == "True") {
        e->constant = Value::boolean(true);
      } else if (n == "false" || n == "False") {
        e->constant = Value::boolean(false);
      } else if (n == "none" || n == "None") {
        e->constant = Value::none();
      } else {
        if (macro_depth_ > 0 && (n == "caller" || n == "varargs" || n == "kwargs")) {
          fail(origin_, line, "unsupported Jinja construct: '" + n + "' inside a macro");
        }
        e->kind = Expr::Kind::Name;
        e->name = n;
      }
      return e;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) s += next().text;  // adjacent literals concatenate
      auto e = make(Expr::Kind::Const, line);
      e->constant = Value::string(std::move(s));
      return e;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      auto e = make(Expr::Kind::Const, line);
      e->constant = t.type == Tok::Int ? Value::integer(t.int_value) : Value::floating(t.float_value);
      next();
      return e;
    }
    if (skip_op("(")) {
      ExprPtr e = parse_tuple(true, true, {});
      expect_op(")");
      return e;
    }
    if (skip_op("[")) {
      auto e = make(Expr::Kind::List, line);
      while (!is_op("]")) {
        if (!e->children.empty()) expect_op(",");
        if (is_op("]")) break;
        e->children.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (skip_op("{")) {
      auto e = make(Expr::Kind::Dict, line);
      while (!is_op("}")) {
        if (!e->children.empty()) expect_op(",");
        if (is_op("}")) break;
        e->children.push_back(parse_expression(true));
        expect_op(":");
        e->children.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    error("unexpected " + token_text(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = next();
    if (t.text == ".") {
      const Token& attr = cur();
      if (attr.type == Tok::Name) {
        auto e = make(Expr::Kind::Getattr, t.line);
        e->name = next().text;
        e->children.push_back(std::move(node));
        return e;
      }
      if (attr.type != Tok::Int) error("expected name or number after '.'");
      auto e = make(Expr::Kind::Getitem, t.line);
      auto index = make(Expr::Kind::Const, attr.line);
      index->constant = Value::integer(attr.int_value);
      next();
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(index));
      return e;
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() == 1 && args[0]->kind == Expr::Kind::Slice) {
      args[0]->children.insert(args[0]->children.begin(), std::move(node));
      return std::move(args[0]);
    }
    auto e = make(Expr::Kind::Getitem, t.line);
    e->children.push_back(std::move(node));
    if (args.size() == 1) {
      e->children.push_back(std::move(args[0]));
    } else {
      for (const auto& a : args) {
        if (a->kind == Expr::Kind::Slice) unsupported("multi-dimensional slice");
      }
      auto tuple = make(Expr::Kind::Tuple, t.line);
      tuple->children = std::move(args);
      e->children.push_back(std::move(tuple));
    }
    return e;
  }

  // An index, or a slice start:stop:step (returned as a Slice without its object).
  ExprPtr parse_subscribed() {
    const int line = cur().line;
    std::vector<ExprPtr> parts;
    if (is_op(":")) {
      next();
      parts.push_back(nullptr);
    } else {
      ExprPtr node = parse_expression(true);
      if (!is_op(":")) return node;
      next();
      parts.push_back(std::move(node));
    }
    if (is_op(":")) {
      parts.push_back(nullptr);
    } else if (!is_op("]") && !is_op(",")) {
      parts.push_back(parse_expression(true));
    } else {
      parts.push_back(nullptr);
    }
    if (is_op(":")) {
      next();
      parts.push_back(!is_op("]") && !is_op(",") ? parse_expression(true) : nullptr);
    } else {
      parts.push_back(nullptr);
    }
    auto e = make(Expr::Kind::Slice, line);
    e->children = std::move(parts);
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        expect_op(",");
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**")) unsupported("*args / **kwargs in a call");
      if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
        std::string key = next().text;
        next();  // =
        e.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.keyword.empty()) error("positional argument follows keyword argument");
        e.children.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::Call, cur().line);
    e->children.push_back(std::move(node));
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string n = expect_name();
    if (is_op(".")) unsupported("dotted filter or test name '" + n + ".'");
    return n;
  }

  ExprPtr parse_filter(ExprPtr node) {
    while (is_op("|")) {
      const int line = next().line;
      auto e = make(Expr::Kind::Filter, line);
      e->name = dotted_name();
      if (!is_supported_filter(e->name)) fail(origin_, line, "unsupported Jinja construct: filter '" + e->name + "'");
      e->children.push_back(std::move(node));
      if (is_op("(")) parse_call_args(*e);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const int line = next().line;  // is
    auto e = make(Expr::Kind::Test, line);
    e->negated = skip_name("not");
    e->name = dotted_name();
    if (!is_supported_test(e->name)) fail(origin_, line, "unsupported Jinja construct: test '" + e->name + "'");
    e->children.push_back(std::move(node));
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((t.type == Tok::Name || t.type == Tok::String || t.type == Tok::Int || t.type == Tok::Float ||
                is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("you cannot chain multiple tests with 'is'");
      e->children.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const std::string& origin_;
  const ParseLimits& limits_;
  int depth_ = 0;
  int loop_depth_ = 0;
  int macro_depth_ = 0;
};

}  // namespace

bool is_supported_filter(const std::string& name) {
  return kFilters.count(name) > 0;
}
bool is_supported_test(const std::string& name) {
  return kTests.count(name) > 0;
}

std::shared_ptr<const Template> parse_template(const std::string& source, const std::string& origin,
                                               const ParseLimits& limits) {
  if (source.size() > limits.max_source_bytes) {
    fail(origin, 1,
         "template of " + std::to_string(source.size()) + " bytes exceeds the limit of " +
             std::to_string(limits.max_source_bytes));
  }
  auto t = std::make_shared<Template>();
  t->origin = origin;
  try {
    Lexer lexer(source, origin);
    Parser parser(lexer.run(), origin, limits);
    t->body = parser.parse();
  } catch (const EvalError& e) {  // invalid UTF-8 met while lexing
    fail(origin, 1, e.message);
  }
  return t;
}

}  // namespace cohort::jinja
