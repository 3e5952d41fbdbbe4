// run.mjs - run the http-cache-tests suite (cache-tests.fyi) against a proxy
// and print a JSON summary: required tests passed/total (dependencies
// honoured, as on cache-tests.fyi), optimal and check tests, and the ids of
// the required tests that did not pass. Browser-only tests are skipped,
// as the suite's own runner skips them for proxies.
// usage: node run.mjs http://127.0.0.1:PORT [out-results.json]
import fs from 'fs'
import fetch from './node_modules/http-cache-tests/node_modules/node-fetch/lib/index.mjs'
import { runTests, getResults } from './node_modules/http-cache-tests/client/runner.mjs'
import * as display from './node_modules/http-cache-tests/lib/display.mjs'
import tests from './node_modules/http-cache-tests/tests/index.mjs'

const base = process.argv[2]
const out = process.argv[3]
await runTests(tests, fetch, false, base)
const results = getResults()
if (out) fs.writeFileSync(out, JSON.stringify(results, null, 2))
const sum = { required_passed: 0, required_total: 0, optimal_passed: 0, optimal_total: 0,
  check_yes: 0, check_total: 0, failed_required: [] }
for (const suite of tests) {
  for (const t of suite.tests) {
    if (t.browser_only === true) continue   // not run against a proxy (runner.mjs skips them too)
    const r = display.determineTestResult(tests, t.id, results)
    const pass = r[2] === '✅' || r[2] === 'Y'
    const kind = t.kind || 'required'
    if (kind === 'required') {
      sum.required_total++
      if (pass) sum.required_passed++
      else sum.failed_required.push(t.id)
    } else if (kind === 'optimal') {
      sum.optimal_total++
      if (pass) sum.optimal_passed++
    } else {
      sum.check_total++
      if (pass) sum.check_yes++
    }
  }
}
console.log(JSON.stringify(sum))
