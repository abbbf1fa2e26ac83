// Scores http-cache-tests result files as cache-tests.fyi counts them:
// failures among required and optimal tests ("check" tests only gather
// information), leaving out tests whose dependencies failed and tests
// that could not be set up. Run from the suite's directory:
//   node weir-score.mjs results/nginx.json ... weir.json
import fs from 'fs'
import suites from './tests/index.mjs'

const tests = suites.flatMap(s => s.tests).filter(t => !t.browser_only)
const byId = Object.fromEntries(tests.map(t => [t.id, t]))

function outcome (results, id, seen = new Set()) {
  const t = byId[id]
  if (!t || seen.has(id)) return 'pass'
  seen.add(id)
  for (const dep of t.depends_on || []) {
    if (outcome(results, dep, seen) !== 'pass') return 'untested'
  }
  const r = results[id]
  if (r === true) return 'pass'
  if (r === undefined) return 'untested'
  if (Array.isArray(r) && (r[0] === 'Setup' || r[0] === 'Retry')) return 'untested'
  return 'fail'
}

for (const file of process.argv.slice(2)) {
  const results = JSON.parse(fs.readFileSync(file))
  const count = { required: [0, 0], optimal: [0, 0], check: [0, 0] }
  const failed = []
  for (const t of tests) {
    const kind = t.kind || 'required'
    const o = outcome(results, t.id)
    if (o === 'untested') continue
    count[kind][1]++
    if (o === 'fail') {
      count[kind][0]++
      if (kind !== 'check') failed.push(`${kind} ${t.id}`)
    }
  }
  const name = file.split('/').pop().replace('.json', '')
  console.log(`${name.padEnd(14)} required failed ${String(count.required[0]).padStart(3)}/${count.required[1]}   optimal failed ${String(count.optimal[0]).padStart(3)}/${count.optimal[1]}`)
  if (process.env.VERBOSE && name === 'weir') console.log('  ' + failed.join('\n  '))
}
