// The PostgREST surface driven by the real JavaScript clients, @supabase/postgrest-js and
// @supabase/supabase-js from npm, with no adapter. tests/e2e/test_module_data_rest_js.py runs it against
// `dramac dev` with a fresh CRM-like module installed on a site (email unique), and passes:
//   REST_URL (…/modules/{moduleId}/rest), MODULE_URL (…/modules/{moduleId}, what supabase-js is given),
//   OWNER_TOKEN, MEMBER_TOKEN (dev JWTs of the site's agency), SITE_KEY (a site API key),
//   OTHER_SITE_URL (the same module's /rest on another agency's site).
// Exit 0 only if every check passes; each failure names the check.
import assert from 'node:assert/strict'
import { PostgrestClient } from '@supabase/postgrest-js'
import { createClient } from '@supabase/supabase-js'
import ws from 'ws'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const REST_URL = env('REST_URL')
const MODULE_URL = env('MODULE_URL')
const SITE_KEY = env('SITE_KEY')
const bearer = (token) => ({ Authorization: `Bearer ${token}` })
// supabase-js's documented server-side options; on Node 20 its realtime client needs the ws package
// (this test opens no realtime channel: the option only lets createClient construct it)
const SERVER_SIDE = { auth: { persistSession: false, autoRefreshToken: false }, realtime: { transport: ws } }
const owner = new PostgrestClient(REST_URL, { headers: bearer(env('OWNER_TOKEN')) })
const member = new PostgrestClient(REST_URL, { headers: bearer(env('MEMBER_TOKEN')) })

const checks = []
const check = (name, fn) => checks.push([name, fn])
const ok = ({ data, error, count, status }) => {
  assert.equal(error, null, `unexpected error ${JSON.stringify(error)} (status ${status})`)
  return { data, count, status }
}
const emails = (rows) => rows.map((r) => r.email)

check('insert one and many, returning rows', async () => {
  const { data: acme } = ok(await owner.from('companies').insert({ name: 'Acme' }).select().single())
  assert.equal(acme.name, 'Acme')
  const { data, status } = ok(await owner.from('contacts').insert([
    { email: 'ada@acme.test', lead_score: 90, company_id: acme.id, tags: ['vip'], first_name: 'Ada' },
    { email: 'bob@acme.test', lead_score: 40, company_id: acme.id, status: 'active' },
    { email: 'cy@example.com', lead_score: 70, status: 'active', profile: { city: 'Paris' } },
  ]).select('email, status'))
  assert.equal(status, 201)
  // an array: a column some rows leave out is null (PostgREST's default without missing=default)
  assert.deepEqual(data, [{ email: 'ada@acme.test', status: null }, { email: 'bob@acme.test', status: 'active' },
    { email: 'cy@example.com', status: 'active' }])
  const minimal = await owner.from('contacts').insert({ email: 'min@example.com' })
  assert.equal(minimal.error, null)
  assert.equal(minimal.status, 201)
  assert.equal(minimal.data, null)
})

check('select with aliases, filters, order, range and count', async () => {
  const { data } = ok(await member.from('contacts').select('mail:email, score:lead_score')
    .gte('lead_score', 40).order('lead_score', { ascending: false }))
  assert.deepEqual(data, [{ mail: 'ada@acme.test', score: 90 }, { mail: 'cy@example.com', score: 70 },
    { mail: 'bob@acme.test', score: 40 }])
  const page = ok(await member.from('contacts').select('email', { count: 'exact' }).order('email').range(1, 2))
  assert.deepEqual(emails(page.data), ['bob@acme.test', 'cy@example.com'])
  assert.equal(page.count, 4)
  const head = ok(await member.from('contacts').select('*', { count: 'exact', head: true }).eq('status', 'active'))
  assert.equal(head.count, 2)
  assert.deepEqual(emails(ok(await member.from('contacts').select('email').in('email', ['ada@acme.test', 'x'])).data),
    ['ada@acme.test'])
  assert.deepEqual(emails(ok(await member.from('contacts').select('email').ilike('email', '%@example.com')
    .not('email', 'eq', 'min@example.com')).data), ['cy@example.com'])
  assert.deepEqual(emails(ok(await member.from('contacts').select('email').contains('tags', ['vip'])).data),
    ['ada@acme.test'])
  assert.deepEqual(emails(ok(await member.from('contacts').select('email').contains('profile', { city: 'Paris' })).data),
    ['cy@example.com'])
  assert.deepEqual(emails(ok(await member.from('contacts').select('email').is('first_name', null)
    .order('first_name', { nullsFirst: true }).order('email').limit(1)).data), ['bob@acme.test'])
  assert.deepEqual(emails(ok(await member.from('contacts').select('email').match({ status: 'active', lead_score: 70 })).data),
    ['cy@example.com'])
})

check('single and maybeSingle', async () => {
  const { data } = ok(await member.from('contacts').select('email').eq('email', 'ada@acme.test').single())
  assert.deepEqual(data, { email: 'ada@acme.test' })
  const many = await member.from('contacts').select('email').single()
  assert.equal(many.status, 406)
  assert.equal(many.error.code, 'PGRST116')
  assert.match(many.error.message, /JSON object requested/)
  const none = ok(await member.from('contacts').select('email').eq('email', 'nobody').maybeSingle())
  assert.equal(none.data, null)
})

check('or and and, nested', async () => {
  const { data } = ok(await member.from('contacts').select('email')
    .or('lead_score.gt.80,and(status.eq.active,or(lead_score.lt.50,email.eq.cy@example.com))').order('email'))
  assert.deepEqual(emails(data), ['ada@acme.test', 'bob@acme.test', 'cy@example.com'])
})

check('embedding both ways', async () => {
  const toOne = ok(await member.from('contacts').select('email, companies(name)').eq('email', 'ada@acme.test').single())
  assert.deepEqual(toOne.data, { email: 'ada@acme.test', companies: { name: 'Acme' } })
  const toMany = ok(await member.from('companies').select('name, contacts(email)').single())
  assert.deepEqual(toMany.data.contacts.map((c) => c.email).sort(), ['ada@acme.test', 'bob@acme.test'])
  const inner = ok(await member.from('contacts').select('email, companies!inner(name)').order('email'))
  assert.deepEqual(emails(inner.data), ['ada@acme.test', 'bob@acme.test'])
})

check('full-text search', async () => {
  ok(await owner.from('deal_notes').insert([{ body: 'The quick brown fox' }, { body: 'A lazy dog' }]))
  const { data } = ok(await member.from('deal_notes').select('body').textSearch('body', 'quick & fox', { config: 'english' }))
  assert.deepEqual(data, [{ body: 'The quick brown fox' }])
  const web = ok(await member.from('deal_notes').select('body').textSearch('body', 'lazy -fox', { type: 'websearch' }))
  assert.deepEqual(web.data, [{ body: 'A lazy dog' }])
})

check('update, upsert and delete with filters; unfiltered ones refused', async () => {
  const updated = ok(await owner.from('contacts').update({ status: 'hot' }).gte('lead_score', 70).select('email'))
  assert.deepEqual(emails(updated.data).sort(), ['ada@acme.test', 'cy@example.com'])
  const merged = ok(await owner.from('contacts').upsert([{ email: 'ada@acme.test', lead_score: 99 },
    { email: 'new@example.com', lead_score: 1 }], { onConflict: 'email' }).select('email, lead_score'))
  assert.deepEqual(merged.data, [{ email: 'ada@acme.test', lead_score: 99 }, { email: 'new@example.com', lead_score: 1 }])
  const ignored = ok(await owner.from('contacts').upsert({ email: 'ada@acme.test', lead_score: 0 },
    { onConflict: 'email', ignoreDuplicates: true }).select())
  assert.deepEqual(ignored.data, [])
  const refused = await owner.from('contacts').delete()
  assert.equal(refused.error.code, '21000')
  assert.equal(refused.error.message, 'DELETE requires a WHERE clause')
  const removed = ok(await owner.from('contacts').delete({ count: 'exact' }).eq('email', 'min@example.com'))
  assert.equal(removed.count, 1)
  const duplicate = await owner.from('contacts').insert({ email: 'ada@acme.test' })
  assert.equal(duplicate.status, 409)
  assert.equal(duplicate.error.code, '23505')
})

check('roles: members write module data as on the data routes', async () => {
  const written = ok(await member.from('contacts').insert({ email: 'member@example.com' }).select('email'))
  assert.deepEqual(written.data, [{ email: 'member@example.com' }])
  const removed = ok(await member.from('contacts').delete({ count: 'exact' }).eq('email', 'member@example.com'))
  assert.equal(removed.count, 1)
})

check('errors in PostgREST shape', async () => {
  const missing = await member.from('nope').select()
  assert.equal(missing.status, 404)
  assert.equal(missing.error.code, 'PGRST205')
  const column = await member.from('contacts').select('nope')
  assert.equal(column.status, 400)
  assert.equal(column.error.code, '42703')
  assert.deepEqual(Object.keys(column.error).sort(), ['code', 'details', 'hint', 'message'])
})

check('supabase-js with a site API key (apikey and bearer), as a module developer writes it', async () => {
  const supabase = createClient(MODULE_URL, SITE_KEY, SERVER_SIDE)
  const { data, error } = await supabase.from('contacts').select('email, companies(name)').eq('email', 'bob@acme.test')
  assert.equal(error, null, JSON.stringify(error))
  assert.deepEqual(data, [{ email: 'bob@acme.test', companies: { name: 'Acme' } }])
  const made = await supabase.from('contacts').insert({ email: 'key@example.com' }).select('email').single()
  assert.equal(made.error, null, JSON.stringify(made.error))
  assert.deepEqual(made.data, { email: 'key@example.com' })
})

check('supabase-js with a signed-in user', async () => {
  const supabase = createClient(MODULE_URL, SITE_KEY, { ...SERVER_SIDE, global: { headers: bearer(env('MEMBER_TOKEN')) } })
  const { count, error } = await supabase.from('contacts').select('*', { count: 'exact', head: true })
  assert.equal(error, null, JSON.stringify(error))
  assert.equal(count, 5)
  const removed = await supabase.from('contacts').delete({ count: 'exact' }).eq('email', 'key@example.com')
  assert.equal(removed.error, null, JSON.stringify(removed.error))
  assert.equal(removed.count, 1)  // members write module data (docs/roles.md)
})

check('tenancy: this key on another site, a wrong key', async () => {
  const other = new PostgrestClient(env('OTHER_SITE_URL'), { headers: { apikey: SITE_KEY, ...bearer(SITE_KEY) } })
  const foreign = await other.from('contacts').select()
  assert.equal(foreign.status, 404)
  const wrong = SITE_KEY.slice(0, -4) + 'AAAA'
  const refused = await new PostgrestClient(REST_URL, { headers: { apikey: wrong, ...bearer(wrong) } })
    .from('contacts').select()
  assert.equal(refused.status, 401)
  assert.equal(refused.error.code, 'PGRST301')
})

let failed = 0
for (const [name, fn] of checks) {
  try {
    await fn()
    console.log(`ok   ${name}`)
  } catch (err) {
    failed += 1
    console.log(`FAIL ${name}\n     ${err && err.stack ? err.stack : err}`)
  }
}
console.log(`${checks.length - failed} of ${checks.length} checks passed`)
process.exit(failed ? 1 : 0)
