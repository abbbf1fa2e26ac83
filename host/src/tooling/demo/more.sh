# Only GET and HEAD are routed to /users/{id}; other paths have no route
curl -si -X POST http://127.0.0.1:8080/users/7 | head -1
# → HTTP/1.1 405 Method Not Allowed
curl -s http://127.0.0.1:8080/nowhere
# → {"error":"no route","method":"GET","path":"/nowhere"}

# The path is normalized before routing
curl -s --path-as-is http://127.0.0.1:8080/orders/../users/7
# → {"id":7,"name":"Ada"}

# Cached answers, and a purge through the admin API
curl -si http://127.0.0.1:8080/users/42 | grep -i '^x-cache'
# → x-cache: MISS
curl -si http://127.0.0.1:8080/users/42 | grep -i '^x-cache'
# → x-cache: HIT
curl -s -X POST -G --data-urlencode 'pattern=*' http://127.0.0.1:9901/admin/plugins/75-cache/kv/purge
# → {"pattern":"*","plugin":"75-cache","purged":

# A body that breaks the JSON Schema of POST /orders never reaches the upstream
curl -s -X POST -H 'x-api-key: weir-demo-key' -H 'content-type: application/json' -d '{"item": "tea"}' http://127.0.0.1:8080/orders
# → "keyword":"required","pointer":"/body/qty"}],"status":422
curl -s -X POST -H 'x-api-key: weir-demo-key' -H 'content-type: application/json' -d '{"item": "tea", "qty": 2}' http://127.0.0.1:8080/orders
# → {"id":43,"order":{"item":"tea","qty":2}}
