// The syntax tree of a Jinja template and the parser that builds it: jinja2's lexer (with
// transformers' trim_blocks=True, lstrip_blocks=True) and grammar, restricted to the subset
// chat templates use. Anything outside it is refused with the construct and line named.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja_value.h"

namespace cohort::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Const,     // constant
    Name,      // name
    List,      // children
    Tuple,     // children
    Dict,      // children: key, value, key, value, ...
    Getattr,   // children[0].name
    Getitem,   // children[0][children[1]]
    Slice,     // children[0][children[1]:children[2]:children[3]] (absent parts are null)
    Call,      // children[0](children[1:], keyword)
    Filter,    // children[0] | name(children[1:], keyword)
    Test,      // children[0] is [not] name(children[1:], keyword)
    Unary,     // name children[0]: "-", "+"
    Binary,    // children[0] name children[1]: + - * / // % ** ~
    Compare,   // children[0] ops[0] children[1] ops[1] children[2] ...
    And,       // children[0] and children[1]
    Or,        // children[0] or children[1]
    Not,       // not children[0]
    CondExpr,  // children[0] if children[1] else children[2] (null: undefined)
  };
  Kind kind;
  int line = 0;
  Value constant;
  std::string name;
  bool negated = false;  // Test: `is not`
  std::vector<ExprPtr> children;
  std::vector<std::string> ops;                          // Compare
  std::vector<std::pair<std::string, ExprPtr>> keyword;  // Call, Filter, Test
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Data,      // text
    Print,     // {{ expr }}
    If,        // branches (cond, body), else_body
    For,       // for targets in expr [if filter]: body, else else_body
    Set,       // set target[.attr] = expr, or set (targets...) = expr
    SetBlock,  // {% set target %}body{% endset %}
    Macro,     // macro name(params=defaults): body
    Break,
    Continue,
    Generation,  // transformers' {% generation %}body{% endgeneration %}: renders body
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;  // For and Set: one name, or several when unpacking
  bool unpack = false;               // the target was a tuple (`for k, v in ...`)
  std::string target_attr;           // Set: `ns.attr`
  std::string name;                  // Macro
  std::vector<std::string> params;   // Macro
  std::vector<ExprPtr> defaults;     // Macro: one per param, null where none
};

struct Template {
  std::string origin;
  Body body;
};

struct ParseLimits {
  size_t max_source_bytes = 0;
  int max_nesting = 0;  // statement and expression nesting depth
};

// Parses a template as jinja2 would under transformers' environment. Throws cohort::Error
// "ORIGIN:LINE: what" for syntax errors and for constructs outside the supported subset.
std::shared_ptr<const Template> parse_template(const std::string& source, const std::string& origin,
                                               const ParseLimits& limits);

// The filters and tests the interpreter implements; the parser refuses any other name.
bool is_supported_filter(const std::string& name);
bool is_supported_test(const std::string& name);

}  // namespace cohort::jinja
