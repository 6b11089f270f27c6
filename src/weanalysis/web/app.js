/* weanalysis dashboard: sign-in, period and user-type pickers, the portrait's charts, drill-down
 * filters, comparison with the previous period, daily trends and a cross-tab heat map.
 *
 * Everything shown comes from our JSON API (/api/v1/...), which renders the core's portrait;
 * this file only lays it out. No build step and no dependencies but the vendored ECharts.
 */
(function () {
  'use strict';

  var PERIODS = { 1: '昨天', 7: '近7天', 30: '近30天' };
  var MAX_DAYS = 366;
  var USERS = { new: '新用户', active: '活跃用户' };
  var DIMS = {
    province: '省份', city: '城市', genders: '性别', ages: '年龄', platforms: '平台', devices: '机型'
  };
  var SPELL = {
    province: 'province', city: 'city', gender: 'genders', genders: 'genders', age: 'ages',
    ages: 'ages', platform: 'platforms', platforms: 'platforms', device: 'devices', devices: 'devices'
  };
  var FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", sans-serif';
  // WCAG AA on white for text and marks that carry meaning
  var GREEN = '#047857';
  var UP = '#047857';
  var DOWN = '#b91c1c';
  var GENDER_COLORS = { 1: '#2563eb', 2: '#db2777', 0: '#94a3b8' };
  var PLATFORM_COLORS = { 1: '#334155', 2: '#059669', 3: '#d97706', 0: '#94a3b8' };
  var SERIES = ['#2563eb', '#059669', '#d97706', '#db2777', '#7c3aed', '#94a3b8'];
  var AGE_ORDER = [1, 2, 3, 4, 5, 6, 0];
  var AGE_NAMES = { 0: '未知', 1: '17岁以下', 2: '18-24岁', 3: '25-29岁', 4: '30-39岁', 5: '40-49岁', 6: '50岁以上' };
  var CITY_TOP = 20;
  var PROVINCE_TOP = 12;
  var TREND_TOP = 5;
  var HEAT_TOP = 12;

  var state = {
    session: null,
    apps: [],
    days: 7, // 1, 7, 30 or 'custom'
    begin: null,
    end: null,
    users: 'active',
    where: [], // [[list name, value as text], ...]
    ct: ['genders', 'ages'],
    trendDim: 'platforms',
    doc: null,
    trend: null,
    seq: 0,
    citiesAll: false,
    provincesAll: false,
    charts: {},
    map: null
  };

  // -- small helpers -----------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(n) { return Number(n).toLocaleString('zh-CN'); }

  function pct(share) {
    if (!share) return '0%';
    var p = share * 100;
    return p < 0.01 ? '<0.01%' : p.toFixed(2) + '%';
  }

  function addDays(iso, n) {
    var d = new Date(iso + 'T00:00:00Z');
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  function daysBetween(a, b) {
    return Math.round((new Date(b + 'T00:00:00Z') - new Date(a + 'T00:00:00Z')) / 86400000) + 1;
  }

  function compact(iso) { return iso.replace(/-/g, ''); }

  function setState(s) { document.body.setAttribute('data-state', s); }

  function appQuery() {
    return state.session ? 'app=' + encodeURIComponent(state.session.appid) : '';
  }

  function api(method, path, body) {
    var opts = { method: method, credentials: 'same-origin', headers: { accept: 'application/json' } };
    if (body) {
      opts.headers['content-type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      if (r.status === 204) return null;
      return r.json().catch(function () { return null; }).then(function (data) {
        if (r.ok) return data;
        var e = new Error((data && data.error && data.error.message) || ('请求失败（HTTP ' + r.status + '）'));
        e.status = r.status;
        e.code = data && data.error && data.error.code;
        throw e;
      });
    }, function () {
      var e = new Error('无法连接服务器，请检查网络后重试');
      e.status = 0;
      throw e;
    });
  }

  // -- sign-in and apps --------------------------------------------------------------------------

  function showSignin(message, keepApps) {
    if (!keepApps) state.session = null;
    $('dash').hidden = true;
    $('signin').hidden = false;
    var err = $('signin-error');
    err.hidden = !message;
    err.textContent = message || '';
    setState('signin');
    ($('appid').value ? $('secret') : $('appid')).focus();
  }

  function onSignin(ev) {
    ev.preventDefault();
    var appid = $('appid').value.trim();
    var secret = $('secret').value;
    var err = $('signin-error');
    if (!appid || !secret) {
      err.textContent = '请输入 AppID 和 AppSecret';
      err.hidden = false;
      return;
    }
    var button = $('signin-button');
    button.disabled = true;
    button.textContent = '登录中…';
    api('POST', '/api/v1/session', { appid: appid, secret: secret }).then(function (session) {
      $('secret').value = '';
      $('appid').value = '';
      err.hidden = true;
      state.where = [];
      start(session, true);
    }, function (e) {
      err.textContent = e.message;
      err.hidden = false;
      setState('signin-error');
      $('secret').select();
    }).then(function () {
      button.disabled = false;
      button.textContent = '登录';
    });
  }

  function onSignout() {
    var q = appQuery();
    api('DELETE', '/api/v1/session' + (q ? '?' + q : '')).catch(function () {}).then(function () {
      return api('GET', '/api/v1/sessions').catch(function () { return { apps: [] }; });
    }).then(function (list) {
      var others = (list && list.apps) || [];
      if (others.length) {
        history.replaceState(null, '', location.pathname);
        switchApp(others[0].appid);
      } else {
        history.replaceState(null, '', location.pathname);
        showSignin('');
      }
    });
  }

  function refreshApps() {
    return api('GET', '/api/v1/sessions').then(function (list) {
      state.apps = list.apps;
      var sel = $('app-switch');
      sel.textContent = '';
      list.apps.forEach(function (a) {
        var o = el('option', { value: a.appid }, a.appid);
        if (state.session && a.appid === state.session.appid) o.selected = true;
        sel.appendChild(o);
      });
      sel.hidden = list.apps.length < 2;
      $('appid-label').hidden = list.apps.length >= 2;
    }, function () {});
  }

  function switchApp(appid) {
    api('GET', '/api/v1/session?app=' + encodeURIComponent(appid)).then(function (session) {
      state.where = [];
      start(session, true);
    }, function (e) {
      showSignin(e.status === 401 ? '登录已过期，请重新登录' : e.message);
    });
  }

  // -- view state in the URL hash, so a reload or a shared link shows the same view --------------

  function readHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    var y = state.session.yesterday;
    var end = h.get('end');
    if (end && /^\d{4}-\d{2}-\d{2}$/.test(end) && end <= y) state.end = end;
    var days = h.get('days');
    if (PERIODS[Number(days)]) state.days = Number(days);
    var begin = h.get('begin');
    if (days === 'custom' && begin && /^\d{4}-\d{2}-\d{2}$/.test(begin) && begin <= state.end &&
        daysBetween(begin, state.end) <= MAX_DAYS) {
      state.days = 'custom';
      state.begin = begin;
    }
    if (USERS[h.get('users')]) state.users = h.get('users');
    state.where = h.getAll('where').map(function (w) {
      var i = w.indexOf('=');
      return i > 0 && SPELL[w.slice(0, i)] ? [SPELL[w.slice(0, i)], w.slice(i + 1)] : null;
    }).filter(Boolean);
    var ct = (h.get('ct') || '').split(',');
    if (ct.length === 2 && DIMS[ct[0]] && DIMS[ct[1]]) state.ct = ct;
    if (DIMS[h.get('trend')]) state.trendDim = h.get('trend');
  }

  function writeHash() {
    var h = new URLSearchParams();
    h.set('app', state.session.appid);
    h.set('days', String(state.days));
    if (state.days === 'custom') h.set('begin', state.begin);
    h.set('users', state.users);
    if (state.end !== state.session.yesterday) h.set('end', state.end);
    state.where.forEach(function (w) { h.append('where', w[0] + '=' + w[1]); });
    h.set('ct', state.ct.join(','));
    h.set('trend', state.trendDim);
    history.replaceState(null, '', '#' + h.toString());
  }

  function currentBegin() {
    return state.days === 'custom' ? state.begin : addDays(state.end, 1 - state.days);
  }

  // -- dashboard ---------------------------------------------------------------------------------

  function start(session, fresh) {
    state.session = session;
    state.end = session.yesterday;
    state.doc = null;
    if (!fresh) readHash();
    $('signin').hidden = true;
    $('dash').hidden = false;
    $('appid-label').textContent = session.appid;
    ['end-date', 'begin-date'].forEach(function (id) {
      var input = $(id);
      input.max = session.yesterday;
      if (session.data_days.first) input.min = session.data_days.first;
    });
    // an imported app has documents only: no segments, cross-tabs or trends to ask for
    var imported = !!session.imported;
    if (imported) state.where = [];
    document.querySelector('[data-testid="trend-card"]').hidden = imported;
    document.querySelector('[data-testid="heat-card"]').hidden = imported;
    var note = $('privacy-note');
    note.hidden = !session.min_users;
    note.textContent = session.min_users ?
      '为保护个人隐私，少于 ' + session.min_users + ' 人的数据项不显示。' : '';
    initCharts();
    refreshApps();
    load();
  }

  function syncControls() {
    Array.prototype.forEach.call(document.querySelectorAll('#period button'), function (b) {
      b.setAttribute('aria-pressed', String(b.dataset.days === String(state.days)));
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-users]'), function (b) {
      b.setAttribute('aria-pressed', String(b.dataset.users === state.users));
    });
    var begin = currentBegin();
    var custom = state.days === 'custom';
    $('begin-box').hidden = !custom;
    $('end-word').textContent = custom ? '到' : '截至';
    $('begin-date').value = begin;
    $('begin-date-text').textContent = begin;
    $('end-date').value = state.end;
    $('end-date-text').textContent = state.end;
    var filters = state.where.map(function (w) { return '&where=' + encodeURIComponent(w[0] + '=' + w[1]); }).join('');
    $('download').href = '/api/v1/portrait.csv?' + appQuery() + '&begin=' + compact(begin) + '&end=' +
      compact(state.end) + '&users=' + state.users + filters;
    var n = daysBetween(begin, state.end);
    var label = n === 1 ? state.end : begin + ' 至 ' + state.end;
    $('range-label').textContent = '统计时间：' + label + '（' + state.session.timezone + '），共 ' + n + ' 天';
    $('trend-dim').value = state.trendDim;
    fillDimSelect($('ct-rows'), state.ct[0]);
    fillDimSelect($('ct-cols'), state.ct[1]);
    renderChips();
    writeHash();
  }

  function fillDimSelect(sel, value) {
    if (!sel.options.length) {
      Object.keys(DIMS).forEach(function (k) { sel.appendChild(el('option', { value: k }, DIMS[k])); });
    }
    sel.value = value;
  }

  function query(extra) {
    var begin = currentBegin();
    var q = appQuery() + '&begin=' + compact(begin) + '&end=' + compact(state.end);
    state.where.forEach(function (w) { q += '&where=' + encodeURIComponent(w[0] + '=' + w[1]); });
    return q + (extra || '');
  }

  function load() {
    syncControls();
    var seq = ++state.seq;
    setState('loading');
    document.body.classList.add('is-loading');
    var started = performance.now();
    var imported = !!state.session.imported;
    var portrait = api('GET', '/api/v1/portrait?' + query('&compare=true' +
      (imported ? '' : '&crosstab=' + state.ct.join(','))));
    var trend = imported ? Promise.resolve(null) : Promise.all([
      api('GET', '/api/v1/trend?' + query('&users=new&dim=' + state.trendDim)),
      api('GET', '/api/v1/trend?' + query('&users=active&dim=' + state.trendDim))
    ]);
    Promise.all([portrait, trend]).then(function (res) {
      if (seq !== state.seq) return; // a newer request is on its way
      state.doc = res[0];
      state.trend = res[1] ? { new: res[1][0], active: res[1][1] } : null;
      $('error-banner').hidden = true;
      render();
      document.body.setAttribute('data-load-ms', String(Math.round(performance.now() - started)));
    }, function (e) {
      if (seq !== state.seq) return;
      if (e.status === 401) { showSignin('登录已过期，请重新登录'); return; }
      // never leave the previous period's numbers under the new period's label
      state.doc = null;
      state.trend = null;
      clearNumbers();
      $('error-banner').textContent = '加载失败：' + e.message;
      $('error-banner').hidden = false;
      setState('error');
    }).then(function () {
      if (seq === state.seq) document.body.classList.remove('is-loading');
    });
  }

  function clearNumbers() {
    ['new', 'active'].forEach(function (u) {
      $('total-' + u).textContent = '–';
      $('total-' + u).removeAttribute('data-value');
      $('total-' + u + '-note').textContent = '';
      $('total-' + u + '-delta').textContent = '';
    });
    $('content').hidden = true;
    $('empty').hidden = true;
    document.body.removeAttribute('data-ref-date');
  }

  function render() {
    var doc = state.doc;
    var set = doc[state.users];
    document.body.setAttribute('data-ref-date', doc.ref_date);
    document.body.setAttribute('data-view-users', state.users);
    document.body.setAttribute('data-where', doc.where.join('&'));
    renderTotals(doc);
    renderChips();
    renderPrivacy(doc);
    var empty = emptyState(doc, set);
    $('empty').hidden = !empty;
    $('content').hidden = !!empty;
    if (empty) {
      $('empty-title').textContent = empty.title;
      $('empty-text').textContent = empty.text;
      var action = $('empty-action');
      action.hidden = !empty.action;
      if (empty.action) {
        action.textContent = empty.action.label;
        action.onclick = empty.action.run;
      }
      setState('empty');
      return;
    }
    var prev = doc.previous ? doc.previous[state.users] : null;
    if (state.trend) renderTrend();
    renderGeo(set, prev);
    renderCities(set, prev);
    renderGenders(set, prev);
    renderAges(set, prev);
    renderPlatforms(set, prev);
    renderDevices(set, prev);
    if (!state.session.imported) renderHeat(set);
    setState('ready');
  }

  // what small-group withholding left out of the set on screen, said in words
  function renderPrivacy(doc) {
    var note = $('privacy-note');
    var w = doc.withheld;
    note.hidden = !w;
    if (!w) return;
    var counts = w[state.users];
    var parts = Object.keys(DIMS).filter(function (d) { return counts[d]; }).map(function (d) {
      return DIMS[d] + ' ' + counts[d] + ' 项';
    });
    if (counts.crosstab) parts.push('交叉分布 ' + counts.crosstab + ' 格');
    note.textContent = '为保护个人隐私，少于 ' + w.min_users + ' 人的数据不显示' +
      (parts.length ? '：本页未显示' + parts.join('、') + '。' : '；本页没有被隐藏的数据。');
    note.setAttribute('data-withheld', parts.join(','));
  }

  function deltaText(now, before) {
    if (before === null || before === undefined || now === null) return '';
    var d = now - before;
    if (d === 0) return '持平';
    return (d > 0 ? '▲' : '▼') + fmt(Math.abs(d));
  }

  function renderTotals(doc) {
    ['new', 'active'].forEach(function (u) {
      var v = $('total-' + u);
      var total = doc[u].total;
      v.textContent = total === null ? '<' + doc.withheld.min_users : fmt(total);
      v.setAttribute('data-value', String(total));
      var delta = $('total-' + u + '-delta');
      var before = doc.previous ? doc.previous[u].total : null;
      delta.textContent = '';
      delta.className = 'delta';
      if (before !== null && total !== null) {
        var d = total - before;
        delta.textContent = '较上期 ' + deltaText(total, before) +
          (before ? '（' + (d >= 0 ? '+' : '') + (100 * d / before).toFixed(1) + '%）' : '');
        delta.className = 'delta ' + (d > 0 ? 'up' : d < 0 ? 'down' : '');
        delta.setAttribute('data-delta', String(d));
      }
    });
    var active = doc.active.total;
    $('total-new-note').textContent = active && doc.new.total !== null ?
      '占活跃用户 ' + pct(doc.new.total / active) : '首次访问在这段时间内';
    $('total-active-note').textContent = state.where.length ? '筛选出的这段时间访问过的用户' : '这段时间访问过的用户';
  }

  function emptyState(doc, set) {
    if (set.total === null) {
      return {
        title: '人数过少，不显示',
        text: '这部分用户少于 ' + doc.withheld.min_users + ' 人，为保护个人隐私不显示。可以移除筛选条件或选择更长的时间段。'
      };
    }
    if (set.total > 0) return null;
    var first = doc.data_days.first;
    var last = doc.data_days.last;
    if (!first) {
      return {
        title: '还没有数据',
        text: '这个应用还没有导入任何访问记录。用 weanalysis ingest 导入访问记录后，刷新本页即可看到用户画像。'
      };
    }
    if (state.where.length) {
      return {
        title: '没有符合筛选条件的用户',
        text: '这段时间没有同时符合所有筛选条件的' + USERS[state.users] + '。',
        action: { label: '清除筛选', run: function () { state.where = []; load(); } }
      };
    }
    var jumpTo = last < state.session.yesterday ? last : state.session.yesterday;
    var jump = {
      label: '查看最近有数据的时间段',
      run: function () { state.end = jumpTo; if (state.days === 'custom') state.days = 7; load(); }
    };
    if (doc.active.total === 0) {
      var why = doc.end < first ? '数据从 ' + first + ' 开始。' :
        (doc.begin > last ? '最后一条数据在 ' + last + '，之后还没有导入新的记录。' :
          '已有数据的日期：' + first + ' 至 ' + last + '。');
      return {
        title: '这段时间没有访问',
        text: doc.begin + (doc.days > 1 ? ' 至 ' + doc.end : '') + ' 没有任何访问记录。' + why,
        action: doc.end === jumpTo ? null : jump
      };
    }
    return {
      title: '这段时间没有新用户',
      text: '这段时间的 ' + fmt(doc.active.total) + ' 位活跃用户都在此之前访问过。新用户是首次访问发生在这段时间内的用户。',
      action: { label: '查看活跃用户', run: function () { state.users = 'active'; syncControls(); render(); } }
    };
  }

  // -- filters (drill-down) ----------------------------------------------------------------------

  function keyOf(dim, it) { return dim === 'devices' ? it.name : String(it.id); }

  function addFilter(dim, value) { addFilters([[dim, value]]); }

  function addFilters(pairs) {
    if (state.session.imported) return; // documents only: no segments
    var added = false;
    pairs.forEach(function (p) {
      var value = String(p[1]);
      var has = state.where.some(function (w) { return w[0] === p[0] && w[1] === value; });
      if (!has) { state.where.push([p[0], value]); added = true; }
    });
    if (added) load();
  }

  function removeFilter(i) {
    state.where.splice(i, 1);
    load();
  }

  function filterLabel(w) {
    var dim = w[0];
    var name = w[1];
    var doc = state.doc;
    if (dim !== 'devices' && doc) {
      ['active', 'new'].forEach(function (u) {
        var hit = (doc[u][dim] || []).filter(function (it) { return String(it.id) === w[1]; })[0];
        if (hit) name = hit.name;
      });
      if (dim === 'ages' && AGE_NAMES[w[1]]) name = AGE_NAMES[w[1]];
    }
    return DIMS[dim] + '：' + name;
  }

  function renderChips() {
    var box = $('chips');
    box.textContent = '';
    box.hidden = !state.where.length;
    state.where.forEach(function (w, i) {
      var label = filterLabel(w);
      var chip = el('span', { 'class': 'chip', 'data-where': w[0] + '=' + w[1] });
      chip.appendChild(el('span', {}, label));
      var x = el('button', { type: 'button', 'class': 'chip-x', 'aria-label': '移除筛选 ' + label }, '×');
      x.addEventListener('click', function () { removeFilter(i); });
      chip.appendChild(x);
      box.appendChild(chip);
    });
    if (state.where.length) {
      var all = el('button', { type: 'button', 'class': 'link', 'data-testid': 'clear-filters' }, '清除全部');
      all.addEventListener('click', function () { state.where = []; load(); });
      box.appendChild(all);
    }
  }

  // -- comparison --------------------------------------------------------------------------------

  function previousOf(prev, dim, it) {
    if (!prev) return null;
    var k = keyOf(dim, it);
    var hit = (prev[dim] || []).filter(function (p) { return keyOf(dim, p) === k; })[0];
    if (hit) return hit;
    // absent last period: 0 users, unless it may have been left out (a small group withheld,
    // or a device outside last period's top 20) — then no comparison rather than a wrong one
    var w = state.doc && state.doc.previous && state.doc.previous.withheld;
    if (w && w[state.users] && w[state.users][dim]) return null;
    if (dim === 'devices' && (prev.devices || []).length >= 20) return null;
    return { value: 0, share: 0 };
  }

  function deltaSpan(dim, it, prev) {
    var p = previousOf(prev, dim, it);
    if (!p) return null;
    var d = it.value - p.value;
    var pp = (it.share - p.share) * 100;
    var text = (d > 0 ? '▲' : d < 0 ? '▼' : '＝') + (d ? fmt(Math.abs(d)) : '') +
      ' ' + (pp >= 0 ? '+' : '−') + Math.abs(pp).toFixed(1) + 'pp';
    var span = el('span', {
      'class': 'rank-delta ' + (d > 0 ? 'up' : d < 0 ? 'down' : ''),
      title: '较上期 ' + (d >= 0 ? '+' : '') + d + ' 人，占比 ' + (pp >= 0 ? '+' : '') + pp.toFixed(2) + ' 个百分点'
    }, text);
    return span;
  }

  // the comparison on a chart's own label: "▲12 +1.2pp" (empty without a previous period)
  function deltaShort(dim, it, prev) {
    var p = previousOf(prev, dim, it);
    if (!p) return '';
    var d = it.value - p.value;
    var pp = (it.share - p.share) * 100;
    return (d > 0 ? '▲' : d < 0 ? '▼' : '＝') + (d ? fmt(Math.abs(d)) : '') + ' ' +
      (pp >= 0 ? '+' : '−') + Math.abs(pp).toFixed(1) + 'pp';
  }

  function deltaWords(dim, it, prev) {
    var p = previousOf(prev, dim, it);
    if (!p) return '';
    var d = it.value - p.value;
    var pp = (it.share - p.share) * 100;
    return (d >= 0 ? '+' : '') + fmt(d) + ' 人，' + (pp >= 0 ? '+' : '') + pp.toFixed(2) + ' 个百分点';
  }

  // -- lists -------------------------------------------------------------------------------------

  function rankList(list, dim, items, max, prev) {
    list.textContent = '';
    var top = items.length ? items[0].value : 0;
    var rank = 0;
    items.slice(0, max || items.length).forEach(function (it) {
      var unknown = it.id === 0 || it.name === '未知';
      if (!unknown) rank += 1;
      var li = el('li', {
        'data-name': it.name, 'data-value': String(it.value), 'data-share': String(it.share),
        'data-key': keyOf(dim, it), tabindex: '0', role: 'button',
        'aria-label': '筛选 ' + DIMS[dim] + ' ' + it.name + '，' + fmt(it.value) + ' 人，' + pct(it.share)
      });
      // 未知 is listed like any value, but never ranked with a medal
      li.appendChild(el('span', { 'class': 'rank-no' + (!unknown && rank <= 3 ? ' rank-top' : '') }, unknown ? '–' : String(rank)));
      li.appendChild(el('span', { 'class': 'rank-name', title: it.name }, it.name));
      var bar = el('span', { 'class': 'rank-bar' });
      var fill = el('span', { 'class': 'rank-fill' });
      fill.style.width = (top ? (100 * it.value / top) : 0).toFixed(1) + '%';
      bar.appendChild(fill);
      li.appendChild(bar);
      li.appendChild(el('span', { 'class': 'rank-value' }, fmt(it.value)));
      li.appendChild(el('span', { 'class': 'rank-share' }, pct(it.share)));
      var ds = deltaSpan(dim, it, prev);
      if (ds) li.appendChild(ds);
      var pick = function () { addFilter(dim, keyOf(dim, it)); };
      li.addEventListener('click', pick);
      li.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(); }
      });
      list.appendChild(li);
    });
    if (!items.length) list.appendChild(el('li', { 'class': 'rank-empty' }, '暂无数据'));
  }

  function tableView(id, head, rows) {
    var box = $('tv-' + id);
    box.textContent = '';
    var table = el('table', { 'class': 'tv-table' });
    var tr = el('tr');
    head.forEach(function (h) { tr.appendChild(el('th', { scope: 'col' }, h)); });
    var thead = el('thead');
    thead.appendChild(tr);
    table.appendChild(thead);
    var tbody = el('tbody');
    rows.forEach(function (r) {
      var row = el('tr');
      r.forEach(function (c, i) { row.appendChild(el(i ? 'td' : 'th', i ? {} : { scope: 'row' }, String(c))); });
      tbody.appendChild(row);
    });
    table.appendChild(tbody);
    box.appendChild(table);
  }

  function itemsTable(id, dim, items, prev) {
    var head = ['名称', '用户数', '占比'];
    if (prev) head.push('较上期');
    tableView(id, head, items.map(function (it) {
      var r = [it.name, fmt(it.value), pct(it.share)];
      if (prev) r.push(deltaWords(dim, it, prev));
      return r;
    }));
  }

  function renderGeo(set, prev) {
    var more = $('province-more');
    more.hidden = set.province.length <= PROVINCE_TOP;
    more.textContent = state.provincesAll ? '收起' : '展开全部 ' + set.province.length + ' 个地区';
    rankList($('province-list'), 'province', set.province, state.provincesAll ? 0 : PROVINCE_TOP, prev);
    itemsTable('province', 'province', set.province, prev);
    var off = set.province.filter(function (p) { return !p.map_name; });
    $('geo-note').textContent = off.length ? '不在地图上：' + off.map(function (p) {
      return p.name + ' ' + fmt(p.value) + ' 人';
    }).join('，') : '';
    if (!state.map) return;
    var data = set.province.filter(function (p) { return p.map_name; }).map(function (p) {
      return { name: p.map_name, value: p.value, share: p.share, full: p.name, id: p.id };
    });
    var max = data.length ? data[0].value : 1;
    state.charts.map.setOption({
      visualMap: { max: Math.max(max, 1), text: [fmt(Math.max(max, 1)) + ' 人', '0'] },
      series: [{ data: data }]
    });
  }

  function renderCities(set, prev) {
    var more = $('city-more');
    more.hidden = set.city.length <= CITY_TOP;
    more.textContent = state.citiesAll ? '收起' : '展开全部 ' + set.city.length + ' 个城市';
    rankList($('city-list'), 'city', set.city, state.citiesAll ? 0 : CITY_TOP, prev);
  }

  // -- charts ------------------------------------------------------------------------------------

  function tooltipItem(p) {
    var d = p.data || {};
    return '<b>' + escapeHtml(d.full || p.name) + '</b><br>' + fmt(d.value || 0) + ' 人 · ' + pct(d.share || 0);
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }

  function base() {
    return {
      textStyle: { fontFamily: FONT },
      tooltip: { trigger: 'item', formatter: tooltipItem, confine: true },
      animationDuration: 300
    };
  }

  function narrow() { return window.innerWidth < 520; }

  function initCharts() {
    if (state.charts.ages) return;
    ['genders', 'ages', 'platforms', 'devices', 'trend', 'trend-share', 'heat'].forEach(function (name) {
      state.charts[name] = echarts.init($('chart-' + name), null, { renderer: 'canvas' });
    });
    [['genders', 'genders'], ['ages', 'ages'], ['platforms', 'platforms'], ['devices', 'devices']].forEach(function (c) {
      state.charts[c[0]].on('click', function (p) {
        if (p.data && p.data.key !== undefined) addFilter(c[1], p.data.key);
      });
    });
    state.charts.heat.on('click', function (p) {
      if (!p.data || !p.data.keys) return;
      addFilters([[state.ct[0], p.data.keys[0]], [state.ct[1], p.data.keys[1]]]);
    });
    state.charts.map = echarts.init($('map'), null, { renderer: 'canvas' });
    var mapOption = base();
    mapOption.visualMap = {
      type: 'continuous', min: 0, max: 1, left: 8, bottom: 8, itemHeight: 90, itemWidth: 10,
      text: ['1', '0'], textStyle: { color: '#334155', fontFamily: FONT }, calculable: false,
      inRange: { color: ['#e6f6ee', '#9fdcbc', '#34a86b', '#046c3c'] }
    };
    mapOption.series = [{
      type: 'map', map: 'china', roam: false, selectedMode: false,
      top: 8, bottom: 8, left: 8, right: 8, label: { show: false },
      itemStyle: { areaColor: '#f1f5f9', borderColor: '#94a3b8', borderWidth: 0.6 },
      emphasis: { label: { show: true, color: '#0f172a' }, itemStyle: { areaColor: '#fbbf24' } },
      // the South China Sea islands inset, drawn visibly (ECharts adds it with no value)
      regions: [{ name: '南海诸岛', itemStyle: { areaColor: '#e2e8f0', borderColor: '#64748b', borderWidth: 1 } }],
      data: []
    }];
    var mapChart = state.charts.map;
    mapChart.on('click', function (p) {
      if (p.data && p.data.id !== undefined) addFilter('province', p.data.id);
    });
    fetch('/static/vendor/china.json').then(function (r) { return r.json(); }).then(function (geo) {
      echarts.registerMap('china', geo);
      mapChart.setOption(mapOption);
      state.map = true;
      if (state.doc && state.doc[state.users].total) renderGeo(state.doc[state.users], state.doc.previous && state.doc.previous[state.users]);
    }).catch(function () {
      $('map').textContent = '地图加载失败，数据见右侧排行';
    });
    window.addEventListener('resize', function () {
      Object.keys(state.charts).forEach(function (k) { state.charts[k].resize(); });
    });
  }

  function donut(chart, dim, items, colors, prev) {
    var option = base();
    option.color = items.map(function (it) { return colors[it.id] || '#64748b'; });
    option.legend = { show: false };
    option.series = [{
      type: 'pie', radius: narrow() ? ['28%', '44%'] : ['40%', '62%'], center: ['50%', '50%'],
      avoidLabelOverlap: true,
      itemStyle: { borderColor: '#fff', borderWidth: 2 },
      // counts and shares on the chart itself: nothing needs a hover (touch screens)
      label: {
        formatter: function (p) {
          return p.name + '\n' + fmt(p.data.value) + (narrow() ? '\n' : ' · ') + pct(p.data.share) +
            (p.data.delta ? '\n' + p.data.delta : '');
        },
        color: '#1e293b', lineHeight: 15, fontSize: 12, overflow: 'none'
      },
      labelLine: { length: 6, length2: 6 },
      labelLayout: { hideOverlap: false, moveOverlap: 'shiftY' },
      data: items.map(function (it) {
        return { name: it.name, value: it.value, share: it.share, key: keyOf(dim, it), delta: deltaShort(dim, it, prev) };
      })
    }];
    chart.setOption(option, true);
    itemsTable(dim, dim, items, prev);
  }

  function renderGenders(set, prev) { donut(state.charts.genders, 'genders', set.genders, GENDER_COLORS, prev); }

  function renderPlatforms(set, prev) { donut(state.charts.platforms, 'platforms', set.platforms, PLATFORM_COLORS, prev); }

  function renderAges(set, prev) {
    // every bucket in age order, 未知 last: the shape of the distribution reads better
    var byId = {};
    set.ages.forEach(function (it) { byId[it.id] = it; });
    var items = AGE_ORDER.map(function (id) {
      return byId[id] || { id: id, name: AGE_NAMES[id], value: 0, share: 0 };
    });
    var rows = items.slice().reverse(); // horizontal bars: category 0 at the bottom
    var option = base();
    option.grid = { left: 8, right: prev && !narrow() ? 170 : 92, top: 4, bottom: 4, containLabel: true };
    option.yAxis = {
      type: 'category', data: rows.map(function (it) { return it.name; }),
      axisTick: { show: false }, axisLine: { lineStyle: { color: '#cbd5e1' } },
      axisLabel: { color: '#334155', fontSize: 12 }
    };
    option.xAxis = { type: 'value', show: false };
    option.series = [{
      type: 'bar', barMaxWidth: 18,
      itemStyle: { color: function (p) { return p.data.id === 0 ? '#94a3b8' : GREEN; }, borderRadius: [0, 4, 4, 0] },
      label: {
        show: true, position: 'right', color: '#1e293b', fontSize: 12,
        formatter: function (p) {
          return fmt(p.data.value) + ' · ' + pct(p.data.share) + (p.data.delta ? '  ' + p.data.delta : '');
        }
      },
      data: rows.map(function (it) {
        return { id: it.id, name: it.name, value: it.value, share: it.share, key: String(it.id), delta: narrow() ? '' : deltaShort('ages', it, prev) };
      })
    }];
    state.charts.ages.setOption(option, true);
    itemsTable('ages', 'ages', items, prev);
  }

  function renderDevices(set, prev) {
    var items = set.devices.slice().reverse(); // ECharts draws category 0 at the bottom
    var box = $('chart-devices');
    box.style.height = Math.max(160, 34 * items.length + 24) + 'px';
    state.charts.devices.resize();
    var option = base();
    option.grid = { left: 8, right: prev && !narrow() ? 190 : 110, top: 8, bottom: 8, containLabel: true };
    option.xAxis = { type: 'value', show: false };
    option.yAxis = {
      type: 'category', data: items.map(function (it) { return it.name; }),
      axisTick: { show: false }, axisLine: { show: false },
      axisLabel: { color: '#334155', fontSize: 12, width: narrow() ? 110 : 170, overflow: 'truncate' }
    };
    option.series = [{
      type: 'bar', barWidth: 16,
      itemStyle: { color: function (p) { return p.data.name === '未知' ? '#94a3b8' : '#2563eb'; }, borderRadius: 8 },
      label: {
        show: true, position: 'right', color: '#1e293b', fontSize: 12,
        formatter: function (p) {
          return fmt(p.data.value) + '  ' + pct(p.data.share) + (p.data.delta ? '  ' + p.data.delta : '');
        }
      },
      data: items.map(function (it) {
        return { name: it.name, value: it.value, share: it.share, key: it.name, delta: narrow() ? '' : deltaShort('devices', it, prev) };
      })
    }];
    state.charts.devices.setOption(option, true);
    itemsTable('devices', 'devices', set.devices, prev);
  }

  // -- trend -------------------------------------------------------------------------------------

  function renderTrend() {
    var t = state.trend;
    var dates = t.active.days.map(function (d) { return d.date; });
    var option = base();
    option.tooltip = { trigger: 'axis', confine: true };
    option.legend = { top: 0, textStyle: { color: '#334155' } };
    option.grid = { left: 8, right: 16, top: 32, bottom: 8, containLabel: true };
    option.xAxis = { type: 'category', data: dates.map(function (d) { return d.slice(5); }), axisLabel: { color: '#334155', hideOverlap: true } };
    option.yAxis = { type: 'value', minInterval: 1, axisLabel: { color: '#334155' } };
    option.series = [
      { name: '活跃用户', type: 'line', symbolSize: 5, color: '#2563eb', data: t.active.days.map(function (d) { return d.total; }) },
      { name: '新用户', type: 'line', symbolSize: 5, color: '#059669', data: t.new.days.map(function (d) { return d.total; }) }
    ];
    state.charts.trend.setOption(option, true);

    // daily share of the top values of the chosen dimension, for the set on screen
    var mine = t[state.users];
    var sums = {};
    var names = {};
    mine.days.forEach(function (d) {
      d.items.forEach(function (it) {
        var k = it.id === undefined ? it.name : String(it.id);
        sums[k] = (sums[k] || 0) + it.value;
        names[k] = it.name;
      });
    });
    var top = Object.keys(sums).sort(function (a, b) { return sums[b] - sums[a]; }).slice(0, TREND_TOP);
    var share = base();
    share.tooltip = {
      trigger: 'axis', confine: true,
      valueFormatter: function (v) { return v === null || v === undefined ? '–' : v.toFixed(1) + '%'; }
    };
    share.legend = { top: 0, type: 'scroll', textStyle: { color: '#334155' } };
    share.grid = { left: 8, right: 16, top: 32, bottom: 8, containLabel: true };
    share.xAxis = option.xAxis;
    share.yAxis = { type: 'value', max: 100, axisLabel: { color: '#334155', formatter: '{value}%' } };
    share.series = top.map(function (k, i) {
      return {
        name: names[k], type: 'line', symbolSize: 4, color: SERIES[i % SERIES.length],
        data: mine.days.map(function (d) {
          if (!d.total) return null;
          var hit = d.items.filter(function (it) { return (it.id === undefined ? it.name : String(it.id)) === k; })[0];
          return hit ? Math.round(1000 * hit.share * 100) / 1000 : 0;
        })
      };
    });
    state.charts['trend-share'].setOption(share, true);
    var head = ['日期', '新用户', '活跃用户'].concat(top.map(function (k) { return names[k] + ' 占比'; }));
    tableView('trend', head, dates.map(function (d, i) {
      var day = mine.days[i];
      return [d, total(t.new.days[i].total), total(t.active.days[i].total)].concat(top.map(function (k) {
        var hit = day.items.filter(function (it) { return (it.id === undefined ? it.name : String(it.id)) === k; })[0];
        return hit ? pct(hit.share) : (day.total ? '0%' : '–');
      }));
    }));
  }

  function total(v) { return v === null ? '不显示' : fmt(v); }

  // -- heat map of two dimensions ----------------------------------------------------------------

  function keyName(dim, set, key) {
    if (dim === 'devices') return key;
    var hit = (set[dim] || []).filter(function (it) { return String(it.id) === String(key); })[0];
    if (hit) return hit.name;
    if (dim === 'ages' && AGE_NAMES[key]) return AGE_NAMES[key];
    return String(key);
  }

  function axisKeys(dim, cells, which) {
    var sums = {};
    cells.forEach(function (c) { sums[c[which]] = (sums[c[which]] || 0) + c.value; });
    var keys = Object.keys(sums);
    if (dim === 'ages') {
      keys.sort(function (a, b) { return AGE_ORDER.indexOf(Number(a)) - AGE_ORDER.indexOf(Number(b)); });
    } else if (dim === 'genders' || dim === 'platforms') {
      keys.sort(function (a, b) { return (Number(a) || 99) - (Number(b) || 99); });
    } else {
      keys.sort(function (a, b) { return sums[b] - sums[a]; });
    }
    return { keys: keys.slice(0, HEAT_TOP), more: keys.length > HEAT_TOP };
  }

  function renderHeat(set) {
    var ct = set.crosstab;
    var chart = state.charts.heat;
    if (!ct) { chart.clear(); return; }
    var rows = axisKeys(ct.rows, ct.cells, 'row');
    var cols = axisKeys(ct.cols, ct.cells, 'col');
    var ri = {};
    var ci = {};
    rows.keys.forEach(function (k, i) { ri[k] = i; });
    cols.keys.forEach(function (k, i) { ci[k] = i; });
    var data = [];
    var max = 1;
    ct.cells.forEach(function (c) {
      if (ri[c.row] === undefined || ci[c.col] === undefined) return;
      max = Math.max(max, c.value);
      data.push({ value: [ci[c.col], ri[c.row], c.value], share: c.share, keys: [String(c.row), String(c.col)] });
    });
    var rowNames = rows.keys.map(function (k) { return keyName(ct.rows, set, k); });
    var colNames = cols.keys.map(function (k) { return keyName(ct.cols, set, k); });
    var box = $('chart-heat');
    box.style.height = Math.max(220, 30 * rows.keys.length + 90) + 'px';
    chart.resize();
    var option = base();
    option.tooltip = {
      confine: true,
      formatter: function (p) {
        return escapeHtml(rowNames[p.value[1]]) + ' × ' + escapeHtml(colNames[p.value[0]]) + '<br>' +
          fmt(p.value[2]) + ' 人 · ' + pct(p.data.share);
      }
    };
    option.grid = { left: 8, right: 8, top: 8, bottom: 44, containLabel: true };
    option.xAxis = {
      type: 'category', data: colNames, splitArea: { show: true },
      axisLabel: { color: '#334155', interval: 0, rotate: narrow() && colNames.length > 4 ? 45 : 0, fontSize: 11, width: 80, overflow: 'truncate' }
    };
    option.yAxis = { type: 'category', data: rowNames, splitArea: { show: true }, axisLabel: { color: '#334155', width: 90, overflow: 'truncate' } };
    option.visualMap = {
      min: 0, max: max, calculable: false, orient: 'horizontal', left: 'center', bottom: 0,
      itemWidth: 10, itemHeight: 120, text: [fmt(max) + ' 人', '0'], textStyle: { color: '#334155' },
      inRange: { color: ['#eff6ff', '#93c5fd', '#2563eb', '#1e3a8a'] }
    };
    option.series = [{
      type: 'heatmap', data: data,
      label: { show: true, fontSize: 11, formatter: function (p) { return fmt(p.value[2]); } },
      emphasis: { itemStyle: { borderColor: '#0f172a', borderWidth: 1 } }
    }];
    chart.setOption(option, true);
    $('heat-note').textContent = (rows.more || cols.more ? '只显示人数最多的前 ' + HEAT_TOP + ' 项；' : '') +
      '格内为同时具有两个值的用户数，点击一格可筛选这部分用户。';
    tableView('heat', [DIMS[ct.rows] + ' \\ ' + DIMS[ct.cols]].concat(colNames), rows.keys.map(function (rk, i) {
      return [rowNames[i]].concat(cols.keys.map(function (ck) {
        var hit = ct.cells.filter(function (c) { return String(c.row) === rk && String(c.col) === ck; })[0];
        return hit ? fmt(hit.value) : '0';
      }));
    }));
  }

  // -- wiring ------------------------------------------------------------------------------------

  function bind() {
    $('signin-form').addEventListener('submit', onSignin);
    $('signout').addEventListener('click', onSignout);
    $('add-app').addEventListener('click', function () { showSignin('', true); });
    $('app-switch').addEventListener('change', function (ev) { switchApp(ev.target.value); });
    Array.prototype.forEach.call(document.querySelectorAll('#period button'), function (b) {
      b.addEventListener('click', function () {
        if (b.dataset.days === 'custom') {
          if (state.days !== 'custom') state.begin = currentBegin();
          state.days = 'custom';
        } else {
          state.days = Number(b.dataset.days);
        }
        load();
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-users]'), function (b) {
      b.addEventListener('click', function () {
        if (state.users === b.dataset.users) return;
        state.users = b.dataset.users;
        syncControls();
        if (state.doc) render();
      });
    });
    ['end-date', 'begin-date'].forEach(function (id) {
      $(id).addEventListener('click', function (ev) {
        // open the calendar wherever the field is clicked, not only on the browser's icon
        try { ev.target.showPicker(); } catch (e) { /* older browsers: their own behaviour */ }
      });
    });
    $('end-date').addEventListener('change', function (ev) {
      var v = ev.target.value;
      if (!v) return;
      state.end = v > state.session.yesterday ? state.session.yesterday : v;
      if (state.days === 'custom') clampCustom('end');
      load();
    });
    $('begin-date').addEventListener('change', function (ev) {
      var v = ev.target.value;
      if (!v) return;
      state.begin = v;
      clampCustom('begin');
      load();
    });
    $('province-more').addEventListener('click', function () {
      state.provincesAll = !state.provincesAll;
      renderGeo(state.doc[state.users], state.doc.previous && state.doc.previous[state.users]);
    });
    $('city-more').addEventListener('click', function () {
      state.citiesAll = !state.citiesAll;
      renderCities(state.doc[state.users], state.doc.previous && state.doc.previous[state.users]);
    });
    $('trend-dim').addEventListener('change', function (ev) { state.trendDim = ev.target.value; load(); });
    $('ct-rows').addEventListener('change', function (ev) { state.ct = [ev.target.value, state.ct[1]]; load(); });
    $('ct-cols').addEventListener('change', function (ev) { state.ct = [state.ct[0], ev.target.value]; load(); });
  }

  // a custom range stays within 1..366 days, moving the other end when needed
  function clampCustom(moved) {
    if (state.begin > state.end) {
      if (moved === 'begin') state.end = state.begin; else state.begin = state.end;
    }
    if (daysBetween(state.begin, state.end) > MAX_DAYS) {
      if (moved === 'begin') state.end = addDays(state.begin, MAX_DAYS - 1);
      else state.begin = addDays(state.end, 1 - MAX_DAYS);
    }
    if (state.end > state.session.yesterday) state.end = state.session.yesterday;
  }

  bind();
  var wanted = new URLSearchParams(location.hash.slice(1)).get('app');
  api('GET', '/api/v1/session' + (wanted ? '?app=' + encodeURIComponent(wanted) : '')).then(function (s) {
    start(s, false);
  }, function (e) {
    if (wanted && e.status === 401) {
      // the link names an app this browser is not signed in to: another signed-in app, or sign-in
      api('GET', '/api/v1/session').then(function (s) { start(s, true); }, function () {
        $('appid').value = wanted;
        showSignin('');
      });
      return;
    }
    showSignin(e.status === 401 ? '' : e.message);
  });
})();
