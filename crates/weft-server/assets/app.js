// The weft dashboard: one ES module, no build step, no dependencies.
//
// Every value from the server is put on the page as text (`textContent`, attributes), never
// as markup, so a step name, parameter, log line or tag holding a script shows as text.
// Pages are routed on the path (`/runs/<id>?step=<id>`), so every link is a deep link.

const API = '/api/v1';
const session = { role: null, csrf: null };
const page = document.getElementById('main');
let leaving = []; // what the current page must stop (event sources, timers) when left

// ---------------------------------------------------------------- helpers

/** An element: `h('a', {href: '/'}, 'text', child)`; strings become text nodes. */
function h(tag, attributes = {}, ...children) {
  const svg = ['svg', 'g', 'rect', 'line', 'path', 'text', 'title', 'polygon', 'circle'].includes(tag);
  const element = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  // A button submits its form only when asked to.
  if (tag === 'button' && !('type' in attributes)) element.setAttribute('type', 'button');
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.setAttribute('class', value);
    else if (name === 'text') element.textContent = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Calls the API; a 401 shows the sign-in form. */
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.method && options.method !== 'GET' && session.csrf) headers['x-weft-csrf'] = session.csrf;
  const response = await fetch(API + path, {
    method: options.method || 'GET',
    headers,
    credentials: 'same-origin',
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    session.role = null;
    signInPage();
    throw new Error('signed out');
  }
  const body = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
  if (!response.ok) throw new Error(body?.error?.message || `${response.status} ${response.statusText}`);
  return body;
}

function link(href, ...children) {
  return h('a', { href, onclick: (event) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(href);
  } }, ...children);
}

function badge(status) {
  return h('span', { class: `badge status-${status}`, 'data-status': status }, status);
}

function when(time) {
  if (!time) return '–';
  const date = new Date(time);
  return date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.round((ms % 3600000) / 60000)} min`;
}

function span(start, end) {
  if (!start) return null;
  return (end ? new Date(end) : new Date()) - new Date(start);
}

function short(value, length = 60) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function parametersText(parameters) {
  return Object.entries(parameters || {}).map(([key, value]) => `${key}=${short(value, 24)}`).join(' ');
}

function failure(error) {
  return h('p', { class: 'error', role: 'alert' }, String(error.message || error));
}

function finished(status) {
  return ['completed', 'failed', 'stopped', 'cached', 'skipped'].includes(status);
}

/** Replaces an element's children, skipping the absent ones (`null` would show as text). */
function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function render(...children) {
  fill(page, ...children);
}

// ---------------------------------------------------------------- routing

function navigate(href, replace = false) {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  route();
}

window.addEventListener('popstate', route);

async function route() {
  for (const stop of leaving) stop();
  leaving = [];
  const url = new URL(location.href);
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (!session.role) {
    try {
      const current = await api('/session');
      session.role = current.role;
      session.csrf = current.csrf;
    } catch {
      return; // the sign-in form is shown
    }
  }
  header();
  try {
    if (parts.length === 0 || (parts[0] === 'runs' && parts.length === 1)) await runsPage(url.searchParams);
    else if (parts[0] === 'runs' && parts.length === 2) await runPage(parts[1], url.searchParams);
    else if (parts[0] === 'compare') await comparePage(url.searchParams);
    else if (parts[0] === 'artifacts' && parts.length === 1) await artifactsPage();
    else if (parts[0] === 'artifacts' && parts.length === 2) await versionsPage(parts[1]);
    else if (parts[0] === 'versions' && parts.length === 2) await versionPage(parts[1]);
    else render(h('h1', {}, 'Not found'), h('p', {}, 'Nothing lives at this address. '), link('/runs', 'Go to the runs.'));
  } catch (error) {
    if (error.message !== 'signed out') render(failure(error));
  }
}

function header() {
  const nav = document.getElementById('nav');
  nav.replaceChildren(link('/runs', 'Runs'), link('/artifacts', 'Artifacts'));
  const who = document.getElementById('who');
  who.replaceChildren(
    h('span', { class: 'muted' }, `signed in as ${session.role}`),
    h('button', { class: 'link', onclick: async () => {
      await api('/session', { method: 'DELETE' }).catch(() => {});
      session.role = null;
      signInPage();
    } }, 'Sign out'),
  );
}

function signInPage() {
  for (const stop of leaving) stop();
  leaving = [];
  document.getElementById('nav').replaceChildren();
  document.getElementById('who').replaceChildren();
  const expired = new URL(location.href).searchParams.get('signin') === 'expired';
  const message = h('p', { class: 'error', role: 'alert' }, expired ? 'That sign-in link was used already or expired: sign in with a key.' : '');
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', placeholder: 'weft_…', 'aria-label': 'API key', required: true });
  const form = h('form', { id: 'signin', onsubmit: async (event) => {
    event.preventDefault();
    const response = await fetch(`${API}/session`, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: input.value }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      message.textContent = body?.error?.message || 'Signing in failed.';
      return;
    }
    session.role = body.role;
    session.csrf = body.csrf;
    const next = new URL(location.href);
    next.searchParams.delete('signin');
    navigate(next.pathname + next.search, true);
  } }, h('label', {}, 'API key ', input), h('button', { type: 'submit' }, 'Sign in'));
  render(h('section', { class: 'signin' }, h('h1', {}, 'Sign in to weft'),
    h('p', { class: 'muted' }, 'Create a key with `weft server keys create --role viewer`, or open the link `weft ui` prints.'),
    form, message));
}

// ---------------------------------------------------------------- runs list

async function runsPage(params) {
  const query = new URLSearchParams();
  for (const name of ['pipeline', 'status', 'tag', 'from', 'before', 'cursor', 'order']) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  query.set('limit', params.get('limit') || '50');
  const data = await api(`/runs?${query}`);
  const selected = new Set();
  const compare = h('button', { type: 'button', disabled: true, onclick: () => navigate(`/compare?runs=${[...selected].join(',')}`) }, 'Compare selected');
  const filters = h('form', { class: 'filters', onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(event.target)) if (value) next.set(name, value);
    navigate(`/runs?${next}`);
  } },
  h('input', { name: 'pipeline', placeholder: 'pipeline', value: params.get('pipeline') || '', 'aria-label': 'pipeline' }),
  h('select', { name: 'status', 'aria-label': 'status' }, h('option', { value: '' }, 'any status'),
    ...['running', 'completed', 'failed', 'stopped', 'initializing'].map((s) => h('option', { value: s, selected: params.get('status') === s }, s))),
  h('input', { name: 'tag', placeholder: 'tag', value: params.get('tag') || '', 'aria-label': 'tag' }),
  h('label', {}, 'from ', h('input', { name: 'from', type: 'text', placeholder: '2026-12-01T00:00:00Z', value: params.get('from') || '' })),
  h('label', {}, 'before ', h('input', { name: 'before', type: 'text', placeholder: '2026-12-02T00:00:00Z', value: params.get('before') || '' })),
  h('button', { type: 'submit' }, 'Filter'), compare);
  const rows = data.runs.map((run) => h('tr', { 'data-run': run.id },
    h('td', {}, h('input', { type: 'checkbox', 'aria-label': `select ${run.name}`, onchange: (event) => {
      if (event.target.checked) selected.add(run.id); else selected.delete(run.id);
      compare.disabled = selected.size < 2;
    } })),
    h('td', {}, link(`/runs/${run.id}`, run.name)),
    h('td', {}, run.pipeline),
    h('td', { class: 'status-cell' }, badge(run.status)),
    h('td', {}, when(run.created_at)),
    h('td', { class: 'duration' }, duration(run.duration_ms)),
    h('td', { class: 'parameters' }, parametersText(run.parameters)),
    h('td', { class: 'tags' }, (run.tags || []).map((t) => h('span', { class: 'tag' }, link(`/runs?tag=${encodeURIComponent(t)}`, t))))));
  const next = data.next_cursor ? (() => {
    const more = new URLSearchParams(params);
    more.set('cursor', data.next_cursor);
    return link(`/runs?${more}`, 'Older runs →');
  })() : null;
  render(h('h1', {}, 'Runs'), filters,
    rows.length ? h('table', { class: 'runs' },
      h('thead', {}, h('tr', {}, h('th', {}), h('th', {}, 'Run'), h('th', {}, 'Pipeline'), h('th', {}, 'Status'), h('th', {}, 'Created'), h('th', {}, 'Duration'), h('th', {}, 'Parameters'), h('th', {}, 'Tags'))),
      h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No runs match.'),
    h('p', { class: 'pager' }, params.get('cursor') ? link('/runs', '← Newest') : null, ' ', next));
  // Live status: while a run of the page is unfinished, refresh its row.
  const timer = setInterval(async () => {
    if (!data.runs.some((run) => !finished(run.status))) return;
    const fresh = await api(`/runs?${query}`).catch(() => null);
    for (const run of fresh?.runs || []) {
      const row = page.querySelector(`tr[data-run="${run.id}"]`);
      if (!row) continue;
      row.querySelector('.status-cell').replaceChildren(badge(run.status));
      row.querySelector('.duration').textContent = duration(run.duration_ms);
    }
    data.runs = fresh?.runs || data.runs;
  }, 1000);
  leaving.push(() => clearInterval(timer));
}

// ---------------------------------------------------------------- one run

/** The last attempt of each invocation, and map items gathered into groups. */
function model(detail) {
  const latest = new Map();
  for (const step of detail.steps) {
    const known = latest.get(step.invocation);
    if (!known || step.attempt >= known.attempt) latest.set(step.invocation, step);
  }
  return { steps: [...latest.values()], byId: new Map(detail.steps.map((s) => [s.id, s])) };
}

async function runPage(reference, params) {
  const detail = await api(`/runs/${encodeURIComponent(reference)}?steps=brief`);
  const run = detail.run;
  const state = model(detail);
  // The graph unless it would have too many nodes to read, a map's items being one node.
  const nodes = new Set(state.steps.map((step) => groupOf(step) || step.invocation)).size;
  const view = params.get('view') || (nodes > 300 ? 'timeline' : 'graph');
  const expanded = new Set((params.get('expand') || '').split(',').filter(Boolean));
  const panel = h('aside', { class: 'panel', id: 'panel' });
  const failed = h('p', { class: 'failed-steps', id: 'failed-steps' });
  const canvas = h('div', { class: 'canvas' });
  const status = h('span', { id: 'run-status' }, badge(run.status));
  const stop = session.role === 'editor' && !finished(run.status)
    ? h('button', { class: 'danger', onclick: async () => {
      if (!confirm(`Stop run ${run.name}? Running steps finish; nothing new starts.`)) return;
      await api(`/runs/${run.id}/stop`, { method: 'POST' }).catch((error) => alert(error.message));
    } }, 'Stop run') : null;
  const [tags, addTag] = tagEditor(`/runs/${run.id}/tags`, run.tags || [], (t) => `/runs?tag=${encodeURIComponent(t)}`);
  const switchTo = (next) => {
    const url = new URL(location.href);
    url.searchParams.set('view', next);
    navigate(url.pathname + url.search, true);
  };
  render(
    h('div', { class: 'run-head' },
      h('h1', {}, run.name), status, stop,
      h('p', { class: 'muted' }, `${run.pipeline} · created ${when(run.created_at)} · `, h('span', { id: 'run-duration' }, duration(run.duration_ms)),
        run.status_reason ? ` · ${run.status_reason}` : '', ' · ', parametersText(run.parameters)),
      h('p', { class: 'run-tags' }, tags, addTag)),
    h('div', { class: 'tabs', role: 'tablist' },
      h('button', { role: 'tab', 'aria-selected': view === 'graph', onclick: () => switchTo('graph') }, 'Graph'),
      h('button', { role: 'tab', 'aria-selected': view === 'timeline', onclick: () => switchTo('timeline') }, 'Timeline'),
      h('span', { class: 'muted' }, `${state.steps.length} steps`)),
    failed,
    h('div', { class: 'run-body' }, canvas, panel));
  const listFailed = () => failed.replaceChildren(...failedSteps(state, (id) => openStep(id)));
  const draw = () => {
    listFailed();
    if (view === 'timeline') canvas.replaceChildren(timeline(state, (id) => openStep(id)));
    else canvas.replaceChildren(graph(detail, state, expanded, (id) => openStep(id), (group) => {
      if (expanded.has(group)) expanded.delete(group); else expanded.add(group);
      const url = new URL(location.href);
      url.searchParams.set('expand', [...expanded].join(','));
      history.replaceState(null, '', url.pathname + url.search);
      draw();
    }));
  };
  const openStep = (id) => {
    const url = new URL(location.href);
    url.searchParams.set('step', id);
    history.replaceState(null, '', url.pathname + url.search);
    stepPanel(panel, id);
  };
  draw();
  if (params.get('step')) stepPanel(panel, params.get('step'));
  else panel.append(h('p', { class: 'muted' }, 'Select a step to see its details and log.'));

  // Live: status events recolour the page; a step the page does not know reloads the run, at
  // most once per four times the last reload took (a map adding steps all the time would
  // otherwise have the page read a run of 100,000 steps over and over), and once more at the
  // end if one was due.
  if (!finished(run.status)) {
    const events = new EventSource(`${API}/runs/${run.id}/events`);
    let reloading = null; // the reload that is due
    let inFlight = false;
    let again = false; // a step the page does not know came during a reload
    let ended = false;
    let redrawing = null;
    let listing = null;
    let nextReload = 0;
    const reload = async () => {
      reloading = null;
      inFlight = true;
      const started = performance.now();
      const fresh = await api(`/runs/${run.id}?steps=brief`).catch(() => null);
      inFlight = false;
      nextReload = performance.now() + 4 * (performance.now() - started);
      if (fresh) {
        detail.steps = fresh.steps; detail.edges = fresh.edges;
        Object.assign(state, model(fresh));
        // A read that started before the run's end must not undo it.
        if (!finished(run.status)) {
          run.status = fresh.run.status;
          status.replaceChildren(badge(fresh.run.status));
        }
        draw();
      }
      if (again) {
        again = false;
        if (ended) reload(); else reloadSoon();
      }
    };
    // Once per four times the last reload took, however many unknown steps come meanwhile.
    const reloadSoon = () => {
      if (inFlight) { again = true; return; }
      if (!reloading) reloading = setTimeout(reload, Math.max(150, nextReload - performance.now()));
    };
    events.addEventListener('status', (message) => {
      const event = JSON.parse(message.data);
      if (event.kind === 'run') {
        run.status = event.status;
        status.replaceChildren(badge(event.status));
        return;
      }
      const known = state.byId.get(event.id);
      if (!known) {
        reloadSoon();
        return;
      }
      const wasFailed = known.status === 'failed';
      Object.assign(known, { status: event.status, status_reason: event.status_reason, started_at: event.started_at, ended_at: event.ended_at });
      // The list reads every step: redrawn at most four times a second, as a map's node is
      // (a map whose items fail as it runs sends thousands of such changes).
      if ((wasFailed || event.status === 'failed') && !listing) listing = setTimeout(() => { listing = null; listFailed(); }, 250);
      for (const node of canvas.querySelectorAll(`[data-step="${event.id}"]`)) node.setAttribute('data-status', event.status);
      // A map's node shows its items' counts: redrawn, but at most four times a second (a map
      // of 100,000 items sends thousands of changes a second, and a redraw reads them all).
      const group = groupOf(known) && canvas.querySelector(`[data-group="${CSS.escape(groupOf(known))}"]`);
      if (group && !redrawing) redrawing = setTimeout(() => { redrawing = null; draw(); }, 250);
    });
    // The server could not keep up with this page: read the run again.
    events.addEventListener('reload', reloadSoon);
    // The run ended: its final state, read at once if anything is pending.
    events.addEventListener('end', () => {
      events.close();
      ended = true;
      if (inFlight) again = true;
      else if (reloading) { clearTimeout(reloading); reload(); }
    });
    leaving.push(() => { events.close(); clearTimeout(reloading); clearTimeout(redrawing); clearTimeout(listing); });
  }
}

/** Failed steps named on a run's page at most: the rest are counted. */
const FAILED_NAMED = 20;

/** The run's failed steps (last attempts), each a link that opens its panel: the failed items
 * of a map of thousands, found without expanding it. Nothing when none failed. */
function failedSteps(state, onStep) {
  const failed = state.steps.filter((step) => step.status === 'failed');
  if (!failed.length) return [];
  const named = failed.slice(0, FAILED_NAMED).flatMap((step, i) => [i ? ', ' : '',
    h('a', { href: '#', 'data-failed': step.id, onclick: (event) => { event.preventDefault(); onStep(step.id); } }, step.invocation)]);
  const rest = failed.length - FAILED_NAMED;
  return [h('strong', {}, `${failed.length} failed: `), ...named, rest > 0 ? ` and ${rest} more` : ''];
}

function groupOf(step) {
  return step.group || null;
}

const STATUS_ORDER = ['failed', 'running', 'stopped', 'initializing', 'completed', 'cached', 'skipped'];

/** The status a group shows: its most telling member's. */
function groupStatus(members) {
  for (const status of STATUS_ORDER) if (members.some((m) => m.status === status)) return status;
  return members[0]?.status || 'initializing';
}

const [NODE_WIDTH, NODE_HEIGHT, ACROSS, DOWN] = [170, 40, 230, 60];

/** Places a DAG's nodes left to right: each in the layer of its longest path from a source
 *  (Kahn's order), ordered inside its layer by two sweeps of the barycenter heuristic.
 *  `edges` holds `from\u0000to` strings. */
function layered(ids, edges) {
  const parents = new Map(ids.map((id) => [id, []]));
  const children = new Map(ids.map((id) => [id, []]));
  for (const edge of edges) {
    const [from, to] = edge.split('\u0000');
    if (!parents.has(to) || !children.has(from)) continue;
    parents.get(to).push(from);
    children.get(from).push(to);
  }
  const layer = new Map();
  const waiting = new Map(ids.map((id) => [id, parents.get(id).length]));
  let ready = ids.filter((id) => waiting.get(id) === 0);
  for (const id of ready) layer.set(id, 0);
  while (ready.length) {
    const next = [];
    for (const id of ready) {
      for (const child of children.get(id)) {
        layer.set(child, Math.max(layer.get(child) || 0, layer.get(id) + 1));
        waiting.set(child, waiting.get(child) - 1);
        if (waiting.get(child) === 0) next.push(child);
      }
    }
    ready = next;
  }
  for (const id of ids) if (!layer.has(id)) layer.set(id, 0);
  const layers = [];
  for (const [id, index] of layer) (layers[index] ||= []).push(id);
  for (let i = 0; i < layers.length; i++) layers[i] ||= [];
  const position = new Map();
  layers.forEach((group) => group.forEach((id, i) => position.set(id, i)));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (const group of layers.slice(1)) {
      const centre = (id) => {
        const ps = parents.get(id);
        return ps.length ? ps.reduce((sum, p) => sum + position.get(p), 0) / ps.length : position.get(id);
      };
      group.sort((a, b) => centre(a) - centre(b));
      group.forEach((id, i) => position.set(id, i));
    }
  }
  const tallest = Math.max(...layers.map((group) => group.length), 1);
  const place = new Map();
  layers.forEach((group, x) => group.forEach((id, y) => {
    const offset = (tallest - group.length) * DOWN / 2;
    place.set(id, { x: 20 + x * ACROSS, y: 20 + offset + y * DOWN });
  }));
  return { place, layers, tallest };
}

/** An edge between two placed nodes, as a curve from the right of one to the left of the other. */
function edgePath(a, b) {
  const [x1, y1, x2, y2] = [a.x + NODE_WIDTH, a.y + NODE_HEIGHT / 2, b.x, b.y + NODE_HEIGHT / 2];
  const bend = (x2 - x1) / 2;
  return h('path', { class: 'edge', d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` });
}

/** The DAG: layered left to right, map groups collapsed unless expanded, pan and zoom. */
function graph(detail, state, expanded, onStep, onGroup) {
  // Nodes: one per step, or one per collapsed group.
  const nodes = new Map();
  const nodeOf = new Map(); // step run id -> node id
  const invocationNode = new Map();
  for (const step of state.steps) {
    const group = groupOf(step);
    const id = group && !expanded.has(group) ? `group:${group}` : step.id;
    if (!nodes.has(id)) nodes.set(id, { id, group: id.startsWith('group:') ? group : null, members: [], label: id.startsWith('group:') ? group : step.invocation });
    nodes.get(id).members.push(step);
    invocationNode.set(step.invocation, id);
  }
  for (const step of detail.steps) nodeOf.set(step.id, invocationNode.get(step.invocation));
  const edges = new Set();
  for (const [parent, child] of detail.edges) {
    const from = nodeOf.get(parent);
    const to = nodeOf.get(child);
    if (from && to && from !== to) edges.add(`${from}\u0000${to}`);
  }
  const { place, layers, tallest } = layered([...nodes.keys()], edges);
  const [width, height, across, down] = [NODE_WIDTH, NODE_HEIGHT, ACROSS, DOWN];
  const content = h('g', { class: 'content' });
  for (const edge of edges) {
    const [from, to] = edge.split('\u0000');
    content.append(edgePath(place.get(from), place.get(to)));
  }
  for (const node of nodes.values()) {
    const { x, y } = place.get(node.id);
    const grouped = Boolean(node.group);
    const status = grouped ? groupStatus(node.members) : node.members[0].status;
    const counts = {};
    for (const member of node.members) counts[member.status] = (counts[member.status] || 0) + 1;
    const caption = grouped
      ? `×${node.members.length} · ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ')}`
      : (node.members[0].attempt > 1 ? `attempt ${node.members[0].attempt} · ` : '') + node.members[0].status;
    const element = h('g', {
      class: `node${grouped ? ' group' : ''}`, transform: `translate(${x},${y})`, tabindex: 0, role: 'button',
      'data-status': status, 'data-step': grouped ? null : node.members[0].id, 'data-group': grouped ? node.group : null,
      'data-label': node.label,
      onclick: () => (grouped ? onGroup(node.group) : onStep(node.members[0].id)),
      onkeydown: (event) => { if (event.key === 'Enter') element.dispatchEvent(new MouseEvent('click')); },
    },
    h('title', {}, grouped ? `${node.label}: ${caption} (click to expand)` : `${node.label}: ${caption}`),
    h('rect', { width, height, rx: 6 }),
    h('text', { x: 10, y: 16, class: 'label' }, short(node.label, 24)),
    h('text', { x: 10, y: 31, class: 'caption' }, short(caption, 30)));
    content.append(element);
  }
  // Expanded groups can collapse again from a list above the graph.
  const collapse = [...expanded].map((group) => h('button', { class: 'link', onclick: () => onGroup(group) }, `collapse ${group}`));
  const totalWidth = 40 + layers.length * across;
  const totalHeight = 40 + tallest * down;
  const svg = h('svg', { class: 'dag', viewBox: `0 0 ${totalWidth} ${totalHeight}`, role: 'img', 'aria-label': 'pipeline graph' }, content);
  panZoom(svg, content, totalWidth, totalHeight);
  return h('div', {}, h('p', { class: 'muted hint' }, 'Drag to pan, wheel to zoom. ', ...collapse), svg);
}

function panZoom(svg, content, width, height) {
  let scale = 1; let dx = 0; let dy = 0;
  const apply = () => content.setAttribute('transform', `translate(${dx},${dy}) scale(${scale})`);
  svg.addEventListener('wheel', (event) => {
    event.preventDefault();
    const box = svg.getBoundingClientRect();
    const factor = event.deltaY < 0 ? 1.15 : 1 / 1.15;
    const px = (event.clientX - box.left) * (width / box.width);
    const py = (event.clientY - box.top) * (height / box.height);
    dx = px - (px - dx) * factor; dy = py - (py - dy) * factor;
    scale *= factor;
    apply();
  }, { passive: false });
  let drag = null;
  svg.addEventListener('pointerdown', (event) => {
    if (event.target.closest('.node')) return;
    drag = { x: event.clientX, y: event.clientY, dx, dy };
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener('pointermove', (event) => {
    if (!drag) return;
    const box = svg.getBoundingClientRect();
    dx = drag.dx + (event.clientX - drag.x) * (width / box.width);
    dy = drag.dy + (event.clientY - drag.y) * (height / box.height);
    apply();
  });
  svg.addEventListener('pointerup', () => { drag = null; });
}

/** Rows past which the timeline draws only those in view (and a screenful either side). */
const TIMELINE_ALL_ROWS = 1000;

/** The timeline: one bar per step from start to end, cached, retried and failed marked. A long
 * one (a map of 100,000 items) is drawn as it scrolls: a row per step in the page would take
 * seconds to lay out and hold hundreds of thousands of elements. */
function timeline(state, onStep) {
  const steps = [...state.steps].sort((a, b) => (a.started_at || '9').localeCompare(b.started_at || '9'));
  const at = (text) => (text ? new Date(text).getTime() : null);
  // Loops, not `Math.min(...list)`: a list that long overflows the call's arguments.
  let origin = Infinity;
  let last = -Infinity;
  for (const step of steps) {
    const start = at(step.started_at);
    if (start !== null && start < origin) origin = start;
    const end = at(step.ended_at) ?? Date.now();
    if (end > last) last = end;
  }
  if (origin === Infinity) origin = Date.now();
  const total = Math.max(1, last - origin);
  const [labelWidth, barsWidth, row] = [220, 760, 20];
  const width = labelWidth + barsWidth + 120;
  const bar = (step, i, selected) => {
    const start = step.started_at ? at(step.started_at) - origin : 0;
    const end = (at(step.ended_at) ?? Date.now()) - origin;
    const x = labelWidth + (start / total) * barsWidth;
    const length = Math.max(2, ((end - start) / total) * barsWidth);
    const marks = [step.status === 'cached' ? 'cached' : null, step.attempt > 1 ? `attempt ${step.attempt}` : null, step.status === 'failed' ? 'failed' : null].filter(Boolean);
    return h('g', { class: `bar${step.id === selected ? ' selected' : ''}`, 'data-step': step.id, 'data-status': step.status, transform: `translate(0,${i * row})`, onclick: () => onStep(step.id), role: 'button', tabindex: 0 },
      h('title', {}, `${step.invocation}: ${step.status}, ${duration(span(step.started_at, step.ended_at))}${marks.length ? ` (${marks.join(', ')})` : ''}`),
      h('text', { x: 4, y: 14, class: 'label' }, short(step.invocation, 30)),
      h('rect', { x, y: 3, width: length, height: row - 6, rx: 2 }),
      marks.length ? h('text', { x: x + length + 4, y: 14, class: 'caption' }, marks.join(' · ')) : null);
  };
  const svg = h('svg', { class: 'timeline', viewBox: `0 0 ${width} ${Math.max(row, steps.length * row)}`, role: 'img', 'aria-label': 'timeline', 'data-rows': steps.length });
  if (steps.length <= TIMELINE_ALL_ROWS) {
    const selected = new URLSearchParams(location.search).get('step');
    svg.append(...steps.map((step, i) => bar(step, i, selected)));
    return svg;
  }
  // The rows in view: the scrolling element is the canvas the timeline is put in.
  const rows = h('g', {});
  svg.append(rows);
  let drawn = null;
  const drawVisible = () => {
    const scroller = svg.parentElement;
    if (!scroller) return;
    const scale = svg.getBoundingClientRect().width / width || 1;
    const rowHeight = row * scale;
    const screen = Math.ceil(scroller.clientHeight / rowHeight) || 40;
    const first = Math.max(0, Math.floor(scroller.scrollTop / rowHeight) - screen);
    const end = Math.min(steps.length, first + 3 * screen);
    if (drawn && drawn[0] === first && drawn[1] === end) return;
    drawn = [first, end];
    const selected = new URLSearchParams(location.search).get('step');
    rows.replaceChildren(...steps.slice(first, end).map((step, i) => bar(step, first + i, selected)));
  };
  let pending = false;
  const onScroll = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawVisible(); });
  };
  // Drawn once the timeline is in the page, then on every scroll of its canvas (a handler
  // that replaces the one of the timeline drawn before).
  requestAnimationFrame(() => {
    drawVisible();
    if (svg.parentElement) svg.parentElement.onscroll = onScroll;
  });
  return svg;
}

// ---------------------------------------------------------------- step panel

async function stepPanel(panel, id) {
  panel.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  for (const node of document.querySelectorAll('.selected')) node.classList.remove('selected');
  for (const node of document.querySelectorAll(`[data-step="${id}"]`)) node.classList.add('selected');
  let detail;
  try {
    detail = await api(`/step-runs/${encodeURIComponent(id)}`);
  } catch (error) {
    panel.replaceChildren(failure(error));
    return;
  }
  const step = detail.step_run;
  const versionLink = (version) => link(`/versions/${version.id}`, `${version.name} v${version.version}`);
  const error = step.error ? h('section', { class: 'step-error' }, h('h3', {}, 'Error'),
    h('pre', { class: 'error-message' }, step.error.message),
    ...(step.error.chain || []).filter((cause) => cause !== step.error.message).map((cause) => h('pre', { class: 'cause' }, `caused by: ${cause}`))) : null;
  const logs = h('section', { class: 'logs' });
  fill(panel,
    h('h2', {}, step.invocation), badge(step.status),
    step.status_reason ? h('p', {}, step.status_reason) : null,
    h('dl', {},
      h('dt', {}, 'Step'), h('dd', {}, step.step),
      h('dt', {}, 'Attempt'), h('dd', {}, `${step.attempt} of ${detail.attempts.length} recorded`),
      h('dt', {}, 'Started'), h('dd', {}, when(step.started_at)),
      h('dt', {}, 'Duration'), h('dd', {}, duration(span(step.started_at, step.ended_at))),
      h('dt', {}, 'Ran'), h('dd', { class: 'runs-on' }, detail.runs_on),
      h('dt', {}, 'Cache'), h('dd', {}, detail.cache),
      step.cache_key ? [h('dt', {}, 'Cache key'), h('dd', { class: 'mono' }, step.cache_key)] : null,
      h('dt', {}, 'Code hash'), h('dd', { class: 'mono' }, step.code_hash)),
    error,
    detail.attempts.length > 1 ? h('section', {}, h('h3', {}, 'Attempts'), h('ol', {}, detail.attempts.map((a) => h('li', {}, badge(a.status), ' ', a.error ? a.error.message : (a.status_reason || ''))))) : null,
    h('section', {}, h('h3', {}, 'Parameters'), h('pre', {}, JSON.stringify(step.parameters, null, 2))),
    h('section', {}, h('h3', {}, 'Inputs'), detail.inputs.length ? h('ul', {}, detail.inputs.map((i) => h('li', {}, `${i.name}: `, versionLink(i.artifact_version)))) : h('p', { class: 'muted' }, 'none')),
    h('section', {}, h('h3', {}, 'Outputs'), detail.outputs.length ? h('ul', {}, detail.outputs.map((o) => h('li', {}, `${o.name}: `, versionLink(o.artifact_version)))) : h('p', { class: 'muted' }, 'none')),
    detail.metadata.length ? h('section', {}, h('h3', {}, 'Metadata'), metadataTable(detail.metadata)) : null,
    h('details', {}, h('summary', {}, 'Configuration'), h('pre', {}, JSON.stringify(step.config, null, 2))),
    logs);
  stepLogs(logs, step.id);
}

function metadataTable(entries) {
  return h('table', { class: 'metadata' }, h('tbody', {}, entries.map((entry) => h('tr', {},
    h('th', {}, entry.key), h('td', {}, typeof entry.value === 'string' ? entry.value : JSON.stringify(entry.value))))));
}

/** A step's log: pages of lines, filtered by level and text; follows a running step. */
function stepLogs(section, id) {
  const list = h('ol', { class: 'log-lines' });
  const more = h('button', { class: 'link' }, 'More lines');
  const level = h('select', { 'aria-label': 'level' }, ...['', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => h('option', { value: l }, l || 'all levels')));
  const search = h('input', { type: 'search', placeholder: 'search the log', 'aria-label': 'search the log' });
  let offset = 0; let tail = null;
  const show = (line) => {
    list.append(h('li', { class: `log level-${line.level.toLowerCase()}` },
      h('span', { class: 'time' }, line.time.slice(11, 23)), h('span', { class: 'level' }, line.level),
      h('span', { class: 'message' }, line.message),
      Object.keys(line.fields).length ? h('span', { class: 'fields' }, JSON.stringify(line.fields)) : null));
    offset = line.line + 1;
  };
  const load = async (reset) => {
    tail?.close();
    if (reset) { offset = 0; list.replaceChildren(); }
    const query = new URLSearchParams({ offset, limit: 200 });
    if (level.value) query.set('level', level.value);
    if (search.value) query.set('q', search.value);
    const page = await api(`/step-runs/${id}/logs?${query}`).catch((error) => ({ error }));
    if (page.error) { list.append(h('li', { class: 'error' }, page.error.message)); return; }
    for (const line of page.lines) show(line);
    if (page.next_offset !== null && page.next_offset !== undefined) offset = page.next_offset;
    more.hidden = page.next_offset === null || page.next_offset === undefined;
    // Live tail: a running step's new lines come as server-sent events until it ends.
    if (page.live && more.hidden) {
      query.set('offset', offset);
      query.delete('limit');
      tail = new EventSource(`${API}/step-runs/${id}/logs/tail?${query}`);
      tail.addEventListener('lines', (message) => { for (const line of JSON.parse(message.data)) show(line); });
      tail.addEventListener('end', () => tail.close());
    }
  };
  more.addEventListener('click', () => load(false));
  level.addEventListener('change', () => load(true));
  search.addEventListener('change', () => load(true));
  leaving.push(() => tail?.close());
  fill(section, h('h3', {}, 'Log'), h('div', { class: 'filters' }, level, search), list, more);
  load(true);
}

// ---------------------------------------------------------------- artifacts

async function artifactsPage() {
  const data = await api('/artifacts');
  render(h('h1', {}, 'Artifacts'), h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Versions'), h('th', {}, 'Latest'), h('th', {}, 'Created'))),
    h('tbody', {}, data.artifacts.map((a) => h('tr', {},
      h('td', {}, link(`/artifacts/${encodeURIComponent(a.name)}`, a.name)), h('td', {}, a.version_count),
      h('td', {}, a.latest_version || '–'), h('td', {}, when(a.created_at)))))));
}

async function versionsPage(name) {
  const data = await api(`/artifacts/${encodeURIComponent(name)}/versions`);
  render(h('h1', {}, name), versionsTable(data.versions));
}

function versionsTable(versions, current) {
  return h('table', { class: 'versions' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Type'), h('th', {}, 'Size'), h('th', {}, 'Tags'), h('th', {}, 'Created'))),
    h('tbody', {}, versions.map((v) => h('tr', { class: v.id === current ? 'current' : null },
      h('td', {}, link(`/versions/${v.id}`, `v${v.version}`)), h('td', {}, v.data_type), h('td', {}, bytes(v.size)),
      h('td', {}, (v.tags || []).map((t) => h('span', { class: 'tag' }, t))), h('td', {}, when(v.created_at))))));
}

function bytes(size) {
  if (size < 1024) return `${size} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = size; let unit = -1;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The tags of a run or version (`path` is its tags route), each removable by an editor, and
 * the form an editor adds one with. `href`, when given, makes each tag a link.
 */
function tagEditor(path, initial, href = null) {
  const tags = h('span', { class: 'tags' });
  const draw = (list) => tags.replaceChildren(...list.map((t) => h('span', { class: 'tag' }, href ? link(href(t), t) : t,
    session.role === 'editor' ? h('button', { class: 'link', 'aria-label': `remove tag ${t}`, onclick: async () => {
      const answer = await api(path, { method: 'DELETE', body: { tags: [t] } }).catch((e) => alert(e.message));
      if (answer) draw(answer.tags);
    } }, '×') : null)));
  draw(initial);
  const add = session.role === 'editor' ? h('form', { class: 'inline', onsubmit: async (event) => {
    event.preventDefault();
    const input = event.target.elements.tag;
    if (!input.value.trim()) return;
    const answer = await api(path, { method: 'POST', body: { tags: [input.value] } }).catch((e) => alert(e.message));
    if (answer) { draw(answer.tags); input.value = ''; }
  } }, h('input', { name: 'tag', placeholder: 'add a tag', 'aria-label': 'add a tag' }), h('button', { type: 'submit' }, 'Tag')) : null;
  return [tags, add];
}

async function versionPage(id) {
  const data = await api(`/artifact-versions/${encodeURIComponent(id)}`);
  const version = data.version;
  const file = (name) => `${API}/artifact-versions/${version.id}/files/${encodeURIComponent(name)}`;
  const [tags, addTag] = tagEditor(`/artifact-versions/${version.id}/tags`, version.tags || []);
  const versions = await api(`/artifacts/${encodeURIComponent(version.name)}/versions`).catch(() => ({ versions: [] }));
  const lineage = await api(`/artifact-versions/${version.id}/lineage?limit=${LINEAGE_NODES}`).catch(() => null);
  render(
    h('h1', {}, `${version.name} `, h('span', { class: 'muted' }, `v${version.version}`)),
    h('p', {}, `${version.data_type} · ${version.materializer} · ${bytes(version.size)} · created ${when(version.created_at)} · `, tags, addTag),
    h('p', {}, 'Produced by ', data.producer ? link(`/runs/${data.producer.run_id}?step=${data.producer.id}`, data.producer.invocation) : 'no step (registered)',
      data.consumers.length ? [' · read by ', ...data.consumers.flatMap((c, i) => [i ? ', ' : '', link(`/runs/${c.run_id}?step=${c.id}`, c.invocation)])] : ''),
    h('section', {}, h('h2', {}, 'Load it'),
      h('pre', { class: 'snippet' }, data.load.rust),
      data.load.python ? h('pre', { class: 'snippet' }, data.load.python) : null),
    data.metadata.length ? h('section', {}, h('h2', {}, 'Metadata'), metadataTable(data.metadata)) : null,
    data.visualizations.length ? h('section', { class: 'visualizations' }, h('h2', {}, 'Visualizations'),
      data.visualizations.map((v) => h('figure', {}, visualization(v, file(v.name)), h('figcaption', {}, v.name)))) : null,
    h('section', {}, h('h2', {}, 'Files'), h('ul', {}, version.files.map((f) => h('li', {},
      h('a', { href: `${file(f.name)}?download=1`, download: f.name }, f.name), ` · ${bytes(f.size)}`)))),
    lineage ? h('section', {}, h('h2', {}, 'Lineage'), lineageView(lineage)) : null,
    h('section', {}, h('h2', {}, 'Versions of this artifact'), versionsTable(versions.versions, version.id)));
}

/** A visualization, each kind shown safely: images as images, CSV as a table, Markdown as
 *  text with its structure, HTML in a sandboxed frame that can run nothing and reach
 *  nothing (the server also sends it with a sandboxing policy). */
function visualization(v, url) {
  if (v.type === 'png' || v.type === 'svg') return h('img', { src: url, alt: v.name, loading: 'lazy' });
  if (v.type === 'html') return h('iframe', { src: url, sandbox: '', referrerpolicy: 'no-referrer', title: v.name, class: 'html-visualization' });
  const holder = h('div', { class: `visualization-${v.type}` }, h('p', { class: 'muted' }, 'Loading…'));
  fetch(url, { credentials: 'same-origin' }).then((r) => r.text()).then((text) => {
    if (v.type === 'csv') holder.replaceChildren(csvTable(text));
    else if (v.type === 'markdown') holder.replaceChildren(markdown(text));
    else holder.replaceChildren(h('pre', {}, text.slice(0, 100000)));
  }).catch((error) => holder.replaceChildren(failure(error)));
  return holder;
}

function csvTable(text) {
  const rows = [];
  let row = []; let cell = ''; let quoted = false;
  for (let i = 0; i < text.length && rows.length < 1000; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; } else if (c !== '\r') cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  const [head, ...body] = rows;
  return h('table', { class: 'csv' }, h('thead', {}, h('tr', {}, (head || []).map((c) => h('th', {}, c)))),
    h('tbody', {}, body.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

/** Markdown's common structure (headings, lists, code, tables, emphasis-free paragraphs),
 *  built as elements from text: nothing in it is read as HTML. */
function markdown(text) {
  const root = h('div', { class: 'markdown' });
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('```')) {
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) code.push(lines[i]);
      root.append(h('pre', {}, code.join('\n')));
    } else if (/^#{1,6} /.test(line)) {
      const level = line.indexOf(' ');
      root.append(h(`h${Math.min(6, level + 2)}`, {}, line.slice(level + 1)));
    } else if (/^\s*[-*] /.test(line)) {
      const items = [];
      for (; i < lines.length && /^\s*[-*] /.test(lines[i]); i++) items.push(h('li', {}, lines[i].replace(/^\s*[-*] /, '')));
      i--;
      root.append(h('ul', {}, items));
    } else if (line.startsWith('|')) {
      const rows = [];
      for (; i < lines.length && lines[i].startsWith('|'); i++) {
        if (/^\|[\s:|-]+\|?$/.test(lines[i])) continue;
        rows.push(lines[i].replace(/^\||\|$/g, '').split('|').map((c) => c.trim()));
      }
      i--;
      const [head, ...body] = rows;
      root.append(h('table', {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))), h('tbody', {}, body.map((r) => h('tr', {}, r.map((c) => h('td', {}, c)))))));
    } else if (line.trim()) {
      root.append(h('p', {}, line));
    }
  }
  return root;
}

/** Where a version came from and what was made from it, as one graph: versions and the
 *  step runs that read or wrote them, left to right; every node links to its page. */
/** Step runs and versions a lineage graph shows each way: more is no longer a picture (the
 * output of a fan-in over 100,000 items has that many inputs). */
const LINEAGE_NODES = 200;

function lineageView(lineage) {
  const cut = [lineage.upstream, lineage.downstream].some((graph) => graph?.truncated);
  const note = cut ? h('p', { class: 'muted lineage-cut' },
    `Its lineage is larger than this picture, which shows the first ${LINEAGE_NODES} step runs and versions each way; `,
    h('code', {}, `weft lineage ${lineage.upstream?.root?.id || lineage.downstream?.root?.id || ''}`), ' lists it all.') : null;
  const members = h('div', { class: 'lineage-members' });
  return h('div', {}, note, lineageGraph(lineage, (node) => members.replaceChildren(...groupMembers(node))), members);
}

/** The members of a lineage group, each a link to its page: what clicking the group shows. */
function groupMembers(node) {
  const index = (text) => Number(/:(\d+)(?:::[^:]+)?$/.exec(text)?.[1] ?? 0);
  const entries = node.members.map((m) => (node.kind === 'step'
    ? { key: m.invocation, href: `/runs/${m.run_id}?step=${m.id}`, text: m.invocation, detail: m.attempt > 1 ? `attempt ${m.attempt} · ${m.status}` : m.status, status: m.status }
    : { key: m.name, href: `/versions/${m.id}`, text: m.name, detail: `v${m.version}` }));
  entries.sort((a, b) => index(a.key) - index(b.key) || a.key.localeCompare(b.key));
  return [
    h('h3', {}, `${node.group}: ${node.members.length} ${node.kind === 'step' ? 'step runs' : 'versions'}`),
    h('ul', { class: 'members' }, entries.map((e) => h('li', { 'data-status': e.status || null }, link(e.href, e.text), ' ', h('span', { class: 'muted' }, e.detail)))),
  ];
}

/** The map a lineage node belongs to, if any: the items of one map in one run, or their
 * versions of one output (`<pipeline>::<map>:<index>::<output>`), become one node. */
function lineageGroup(node) {
  const v = node.value;
  if (node.root) return null;
  if (node.kind === 'step') {
    const item = /^(.*):\d+$/.exec(v.invocation);
    return item ? { key: `s:${v.run_id}:${item[1]}`, label: item[1], kind: 'step' } : null;
  }
  const item = /^(.*):\d+::([^:]+)$/.exec(v.name);
  return item ? { key: `v:${item[1]}::${item[2]}`, label: `${item[1]}:*::${item[2]}`, kind: 'version' } : null;
}

function lineageGraph(lineage, onGroup) {
  const found = new Map();
  const links = new Set();
  for (const graph of [lineage.upstream, lineage.downstream]) {
    if (!graph) continue;
    for (const v of graph.artifact_versions || []) found.set(`v:${v.id}`, { kind: 'version', value: v });
    if (graph.root) found.set(`v:${graph.root.id}`, { kind: 'version', value: graph.root, root: true });
    for (const s of graph.step_runs || []) found.set(`s:${s.id}`, { kind: 'step', value: s });
    for (const [version, step] of graph.reads || []) links.add(`v:${version}\u0000s:${step}`);
    for (const [step, version] of graph.writes || []) links.add(`s:${step}\u0000v:${version}`);
  }
  if (found.size <= 1) return h('p', { class: 'muted' }, 'Nothing was read to make it, and nothing was made from it.');
  // A map's items (and their outputs) are one node when there are several, like in a run's
  // graph: a fan-in over thousands is a picture of three nodes, not a column of thousands.
  const groups = new Map();
  for (const [id, node] of found) {
    const group = lineageGroup(node);
    if (!group) continue;
    if (!groups.has(group.key)) groups.set(group.key, []);
    groups.get(group.key).push(id);
  }
  const nodeOf = new Map();
  const nodes = new Map();
  for (const [id, node] of found) {
    const group = lineageGroup(node);
    const members = group && groups.get(group.key);
    if (members && members.length > 1) {
      nodeOf.set(id, `g:${group.key}`);
      if (!nodes.has(`g:${group.key}`)) nodes.set(`g:${group.key}`, { kind: group.kind, group: group.label, members: members.map((m) => found.get(m).value) });
    } else {
      nodeOf.set(id, id);
      nodes.set(id, node);
    }
  }
  const edges = new Set();
  for (const link of links) {
    const [from, to] = link.split('\u0000');
    // Within one group (a map reading its own items' outputs) there is no edge to draw.
    if (nodeOf.has(from) && nodeOf.has(to) && nodeOf.get(from) !== nodeOf.get(to)) edges.add(`${nodeOf.get(from)}\u0000${nodeOf.get(to)}`);
  }
  const { place, layers, tallest } = layered([...nodes.keys()], edges);
  const content = h('g', { class: 'content' });
  for (const edge of edges) {
    const [from, to] = edge.split('\u0000');
    if (place.has(from) && place.has(to)) content.append(edgePath(place.get(from), place.get(to)));
  }
  for (const [id, node] of nodes) {
    const { x, y } = place.get(id);
    const v = node.value;
    let label, caption, href, status;
    if (node.group) {
      const counts = {};
      for (const member of node.members) if (member.status) counts[member.status] = (counts[member.status] || 0) + 1;
      label = node.group;
      caption = `×${node.members.length} ${node.kind === 'step' ? Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ') : 'versions'}`;
      status = node.kind === 'step' ? groupStatus(node.members) : null;
    } else if (node.kind === 'version') {
      [label, caption, href] = [v.name, `v${v.version}${node.root ? ' · this version' : ''}`, `/versions/${v.id}`];
    } else {
      [label, caption, href, status] = [v.invocation, v.status, `/runs/${v.run_id}?step=${v.id}`, v.status];
    }
    // A group lists its members below the picture; any other node opens its page.
    const open = href ? () => navigate(href) : () => onGroup(node);
    content.append(h('g', {
      class: `node lineage-${node.kind}${node.root ? ' root' : ''}${node.group ? ' group' : ''}`, transform: `translate(${x},${y})`, role: href ? 'link' : 'button', tabindex: 0,
      'data-status': status, 'data-label': label,
      onclick: open, onkeydown: (event) => { if (event.key === 'Enter') open(); },
    }, h('title', {}, node.group ? `${label} (${caption}; click to list them)` : `${label} (${caption})`), h('rect', { width: NODE_WIDTH, height: NODE_HEIGHT, rx: node.kind === 'version' ? 18 : 6 }),
    h('text', { x: 10, y: 16, class: 'label' }, short(label, 24)), h('text', { x: 10, y: 31, class: 'caption' }, short(caption, 30))));
  }
  const [width, height] = [40 + layers.length * ACROSS, 40 + tallest * DOWN];
  const svg = h('svg', { class: 'dag lineage-graph', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'lineage graph' }, content);
  panZoom(svg, content, width, height);
  return svg;
}

// ---------------------------------------------------------------- comparison

async function comparePage(params) {
  const ids = (params.get('runs') || '').split(',').filter(Boolean);
  if (ids.length < 2) {
    render(h('h1', {}, 'Compare runs'), h('p', {}, 'Select two or more runs in the runs list.'));
    return;
  }
  const runs = await Promise.all(ids.map((id) => api(`/runs/${encodeURIComponent(id)}?steps=brief`)));
  const differs = (values) => new Set(values.map((v) => JSON.stringify(v ?? null))).size > 1;
  const row = (label, values, show = (v) => (v === undefined ? '–' : typeof v === 'string' ? v : JSON.stringify(v))) =>
    h('tr', { class: differs(values) ? 'differs' : null }, h('th', {}, label), values.map((v) => h('td', {}, show(v))));
  const keys = (pick) => [...new Set(runs.flatMap((r) => Object.keys(pick(r) || {})))].sort();
  // Steps by invocation; a map's items are compared as a group.
  const outcome = (detail) => {
    const byKey = new Map();
    for (const step of model(detail).steps) {
      const key = step.group ? `${step.group} (map)` : step.invocation;
      const known = byKey.get(key) || { statuses: {}, ms: 0 };
      known.statuses[step.status] = (known.statuses[step.status] || 0) + 1;
      known.ms += span(step.started_at, step.ended_at) || 0;
      byKey.set(key, known);
    }
    return byKey;
  };
  const outcomes = runs.map(outcome);
  const stepKeys = [...new Set(outcomes.flatMap((o) => [...o.keys()]))];
  const statusText = (o) => (o ? Object.entries(o.statuses).map(([s, n]) => (n > 1 ? `${n} ${s}` : s)).join(', ') : undefined);
  render(h('h1', {}, `Comparing ${runs.length} runs`),
    h('table', { class: 'compare' },
      h('thead', {}, h('tr', {}, h('th', {}), runs.map((r) => h('th', {}, link(`/runs/${r.run.id}`, r.run.name))))),
      h('tbody', {},
        h('tr', { class: 'section' }, h('th', { colspan: runs.length + 1 }, 'Run')),
        row('pipeline', runs.map((r) => r.run.pipeline)),
        row('status', runs.map((r) => r.run.status)),
        row('duration', runs.map((r) => r.run.duration_ms), duration),
        row('tags', runs.map((r) => r.run.tags || []), (v) => v.join(', ') || '–'),
        h('tr', { class: 'section' }, h('th', { colspan: runs.length + 1 }, 'Parameters')),
        keys((r) => r.run.parameters).map((k) => row(k, runs.map((r) => r.run.parameters?.[k]))),
        h('tr', { class: 'section' }, h('th', { colspan: runs.length + 1 }, 'Configuration')),
        keys((r) => r.run.config).map((k) => row(k, runs.map((r) => r.run.config?.[k]))),
        h('tr', { class: 'section' }, h('th', { colspan: runs.length + 1 }, 'Steps')),
        stepKeys.map((k) => row(k, outcomes.map((o) => statusText(o.get(k))))),
        h('tr', { class: 'section' }, h('th', { colspan: runs.length + 1 }, 'Step durations')),
        stepKeys.map((k) => h('tr', {}, h('th', {}, k), outcomes.map((o) => h('td', {}, o.get(k) ? duration(o.get(k).ms) : '–')))))));
}

route();
