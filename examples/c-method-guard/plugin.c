// A Weir plugin in C: answers 405 Method Not Allowed, with an `allow`
// header, to requests whose method is not in the configured list, so they
// never reach the upstream.
//
// Config (the plugin's JSON file):
//
//   {"allow": ["GET", "HEAD", "OPTIONS"]}
//
// The bindings (gen/plugin.h, gen/plugin.c) are generated from wit/ by
// `wit-bindgen c`; build.sh does that, compiles with clang for wasm32-wasi
// and wraps the module into a component with `wasm-tools component new`.
//
// Ownership follows wit-bindgen's C conventions: strings passed to an
// export belong to it (free them), strings returned by an import belong to
// the caller (free them), borrowed handles passed to an export are dropped
// before it returns, and what an export returns is freed by the generated
// post-return function (so it must come from malloc).

#include "gen/plugin.h"

#include <stdlib.h>
#include <string.h>

#define MAX_METHODS 16
#define MAX_METHOD_LEN 32

static char allowed[MAX_METHODS][MAX_METHOD_LEN + 1];
static size_t allowed_count;
// "GET, HEAD": the value of the `allow` header of a 405 answer.
static char allow_header[MAX_METHODS * (MAX_METHOD_LEN + 2) + 1];

// ---- a strict parser for {"allow": ["GET", ...]} -------------------------

typedef struct {
  const char *at;
  const char *end;
} cursor_t;

static void skip_space(cursor_t *c) {
  while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
    c->at++;
  }
}

static bool eat(cursor_t *c, char ch) {
  skip_space(c);
  if (c->at < c->end && *c->at == ch) {
    c->at++;
    return true;
  }
  return false;
}

// A JSON string without escapes, copied into `out` (at most `cap` bytes).
static bool string_token(cursor_t *c, char *out, size_t cap) {
  if (!eat(c, '"')) return false;
  size_t len = 0;
  while (c->at < c->end && *c->at != '"') {
    if (*c->at == '\\' || len == cap) return false;
    out[len++] = *c->at++;
  }
  if (c->at == c->end) return false;
  c->at++;
  out[len] = '\0';
  return true;
}

static bool is_token(const char *s) {
  if (*s == '\0') return false;
  for (; *s; s++) {
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '-' || *s == '_')) return false;
  }
  return true;
}

// NULL on success, else what is wrong with the config.
static const char *parse_config(const char *text, size_t len) {
  cursor_t c = {text, text + len};
  char key[16];
  if (!eat(&c, '{')) return "expected a JSON object like {\"allow\": [\"GET\"]}";
  if (!string_token(&c, key, sizeof key - 1) || strcmp(key, "allow") != 0) {
    return "the only field is `allow`, a list of methods";
  }
  if (!eat(&c, ':') || !eat(&c, '[')) return "`allow` must be a list of methods";
  allowed_count = 0;
  if (!eat(&c, ']')) {
    do {
      if (allowed_count == MAX_METHODS) return "`allow` lists too many methods";
      char *method = allowed[allowed_count];
      if (!string_token(&c, method, MAX_METHOD_LEN) || !is_token(method)) {
        return "`allow` entries must be method names like \"GET\"";
      }
      for (char *p = method; *p; p++) {
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
      }
      allowed_count++;
    } while (eat(&c, ','));
    if (!eat(&c, ']')) return "`allow` must be a list of methods";
  }
  if (!eat(&c, '}')) return "the only field is `allow`, a list of methods";
  skip_space(&c);
  if (c.at != c.end) return "unexpected text after the config object";
  if (allowed_count == 0) return "`allow` must name at least one method";

  allow_header[0] = '\0';
  for (size_t i = 0; i < allowed_count; i++) {
    if (i > 0) strcat(allow_header, ", ");
    strcat(allow_header, allowed[i]);
  }
  return NULL;
}

// ---- helpers --------------------------------------------------------------

static bool method_allowed(const plugin_string_t *method) {
  for (size_t i = 0; i < allowed_count; i++) {
    if (strlen(allowed[i]) == method->len && memcmp(allowed[i], method->ptr, method->len) == 0) {
      return true;
    }
  }
  return false;
}

static void log_info(const char *prefix, const plugin_string_t *detail) {
  size_t prefix_len = strlen(prefix);
  plugin_string_t message;
  message.len = prefix_len + detail->len;
  message.ptr = malloc(message.len);
  if (message.ptr == NULL) return;
  memcpy(message.ptr, prefix, prefix_len);
  memcpy(message.ptr + prefix_len, detail->ptr, detail->len);
  weir_plugin_log_log(WEIR_PLUGIN_LOG_LEVEL_INFO, &message);
  plugin_string_free(&message);
}

// A 405 reply; every part is malloc'd because post-return frees it.
static void method_not_allowed(exports_weir_plugin_handler_action_t *ret) {
  static const char body[] = "method not allowed\n";
  weir_plugin_types_reply_t *reply = &ret->val.respond;
  ret->tag = WEIR_PLUGIN_TYPES_ACTION_RESPOND;
  reply->status = 405;
  reply->headers.len = 2;
  reply->headers.ptr = calloc(2, sizeof(weir_plugin_types_header_t));
  if (reply->headers.ptr == NULL) abort();
  plugin_string_dup(&reply->headers.ptr[0].f0, "allow");
  plugin_string_dup(&reply->headers.ptr[0].f1, allow_header);
  plugin_string_dup(&reply->headers.ptr[1].f0, "content-type");
  plugin_string_dup(&reply->headers.ptr[1].f1, "text/plain");
  reply->body.len = sizeof body - 1;
  reply->body.ptr = malloc(reply->body.len);
  if (reply->body.ptr == NULL) abort();
  memcpy(reply->body.ptr, body, reply->body.len);
}

// ---- the handler exports --------------------------------------------------

// Only `on-request` does anything, so only it is declared: the gateway
// never calls `on-response`.
bool exports_weir_plugin_handler_init(plugin_string_t *config,
                                      exports_weir_plugin_handler_hooks_t *ret,
                                      plugin_string_t *err) {
  const char *problem = parse_config((const char *)config->ptr, config->len);
  plugin_string_free(config);
  if (problem != NULL) {
    plugin_string_dup(err, problem);
    return false;
  }
  *ret = WEIR_PLUGIN_TYPES_HOOKS_ON_REQUEST;
  return true;
}

void exports_weir_plugin_handler_on_request(exports_weir_plugin_handler_borrow_request_t req,
                                            exports_weir_plugin_handler_action_t *ret) {
  plugin_string_t method;
  weir_plugin_types_method_request_method(req, &method);
  if (method_allowed(&method)) {
    ret->tag = WEIR_PLUGIN_TYPES_ACTION_CONTINUE;
  } else {
    log_info("refused method ", &method);
    method_not_allowed(ret);
  }
  plugin_string_free(&method);
  weir_plugin_types_request_drop_borrow(req);
}

// Not declared in `init`, so never called; the world still requires it.
void exports_weir_plugin_handler_on_response(exports_weir_plugin_handler_borrow_request_t req,
                                             exports_weir_plugin_handler_borrow_response_t resp,
                                             exports_weir_plugin_handler_action_t *ret) {
  ret->tag = WEIR_PLUGIN_TYPES_ACTION_CONTINUE;
  weir_plugin_types_response_drop_borrow(resp);
  weir_plugin_types_request_drop_borrow(req);
}
