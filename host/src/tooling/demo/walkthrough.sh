# A routed call: GET /users/7 goes to the users upstream as /7.json
curl -s http://127.0.0.1:8080/users/7
# → {"id":7,"name":"Ada"}

# Everything else needs an API key: a 401 without one, then the demo key
curl -si http://127.0.0.1:8080/orders/index.json | head -1
# → HTTP/1.1 401 Unauthorized
curl -s -H 'x-api-key: weir-demo-key' http://127.0.0.1:8080/orders/index.json
# → [{"id":42}]

# One request, two upstream calls (users and orders), one merged answer
curl -s http://127.0.0.1:8080/users/7/summary
# → {"orders":[{"id":42}],"user":{"id":7,"name":"Ada"}}

# A hot reload: drop a plugin into the directory; it serves within a second
cp demo/extras/hello-header.wasm demo/plugins/90-hello.wasm
curl -si -H 'x-api-key: weir-demo-key' http://127.0.0.1:8080/orders/ | grep -i '^x-hello'
# → x-hello: weir

# The pipeline as the admin API sees it (also at http://127.0.0.1:9901/ui)
curl -s http://127.0.0.1:9901/admin/plugins | grep -o '"name":"[^"]*"'
# → "name":"50-router" … "name":"90-hello"

# A burst of 100 past the per-client limit (20/s plus a burst of 40): 429s
curl -s -o /dev/null -w '%{http_code}\n' 'http://127.0.0.1:8080/users/7?n=[1-100]' | sort | uniq -c
# → 200 … 429
