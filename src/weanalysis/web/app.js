/* weanalysis dashboard: sign-in, period and user-type pickers, the portrait's charts.
 *
 * Everything shown comes from our JSON API (/api/v1/...), which renders the core's portrait;
 * this file only lays it out. No build step and no dependencies but the vendored ECharts.
 */
(function () {
  'use strict';

  var PERIODS = { 1: '昨天', 7: '近7天', 30: '近30天' };
  var USERS = { new: '新用户', active: '活跃用户' };
  var FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", sans-serif';
  var GREEN = '#07c160';
  var GENDER_COLORS = { 1: '#3b82f6', 2: '#f472b6', 0: '#cbd5e1' };
  var PLATFORM_COLORS = { 1: '#334155', 2: GREEN, 3: '#f59e0b', 0: '#cbd5e1' };
  var CITY_TOP = 20;
  var PROVINCE_TOP = 12;

  var state = {
    session: null,
    days: 7,
    end: null,
    users: 'active',
    doc: null,
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

  function compact(iso) { return iso.replace(/-/g, ''); }

  function setState(s) { document.body.setAttribute('data-state', s); }

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

  // -- sign-in -----------------------------------------------------------------------------------

  function showSignin(message) {
    state.session = null;
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
      err.hidden = true;
      start(session);
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
    api('DELETE', '/api/v1/session').catch(function () {}).then(function () {
      history.replaceState(null, '', location.pathname);
      showSignin('');
    });
  }

  // -- view state in the URL hash, so a reload or a shared link shows the same view --------------

  function readHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    var days = Number(h.get('days'));
    if (PERIODS[days]) state.days = days;
    if (USERS[h.get('users')]) state.users = h.get('users');
    var end = h.get('end');
    if (end && /^\d{4}-\d{2}-\d{2}$/.test(end) && end <= state.session.yesterday) state.end = end;
  }

  function writeHash() {
    var h = 'days=' + state.days + '&users=' + state.users;
    if (state.end !== state.session.yesterday) h += '&end=' + state.end;
    history.replaceState(null, '', '#' + h);
  }

  // -- dashboard ---------------------------------------------------------------------------------

  function start(session) {
    state.session = session;
    state.end = session.yesterday;
    readHash();
    $('signin').hidden = true;
    $('dash').hidden = false;
    $('appid-label').textContent = session.appid;
    var input = $('end-date');
    input.max = session.yesterday;
    if (session.data_days.first) input.min = session.data_days.first;
    initCharts();
    load();
  }

  function syncControls() {
    Array.prototype.forEach.call(document.querySelectorAll('#period button'), function (b) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.days) === state.days));
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-users]'), function (b) {
      b.setAttribute('aria-pressed', String(b.dataset.users === state.users));
    });
    $('end-date').value = state.end;
    $('end-date-text').textContent = state.end;
    var begin = addDays(state.end, 1 - state.days);
    $('download').href = '/api/v1/portrait.csv?begin=' + compact(begin) + '&end=' + compact(state.end) +
      '&users=' + state.users;
    var label = state.days === 1 ? state.end : begin + ' 至 ' + state.end;
    $('range-label').textContent = '统计时间：' + label + '（' + state.session.timezone + '），共 ' +
      state.days + ' 天';
    writeHash();
  }

  function load() {
    syncControls();
    var begin = addDays(state.end, 1 - state.days);
    var seq = ++state.seq;
    setState('loading');
    document.body.classList.add('is-loading');
    api('GET', '/api/v1/portrait?begin=' + compact(begin) + '&end=' + compact(state.end)).then(function (doc) {
      if (seq !== state.seq) return; // a newer request is on its way
      state.doc = doc;
      $('error-banner').hidden = true;
      render();
    }, function (e) {
      if (seq !== state.seq) return;
      if (e.status === 401) { showSignin('登录已过期，请重新登录'); return; }
      $('error-banner').textContent = e.message;
      $('error-banner').hidden = false;
      setState('error');
    }).then(function () {
      if (seq === state.seq) document.body.classList.remove('is-loading');
    });
  }

  function render() {
    var doc = state.doc;
    var set = doc[state.users];
    document.body.setAttribute('data-ref-date', doc.ref_date);
    document.body.setAttribute('data-view-users', state.users);
    renderTotals(doc);
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
    renderGeo(set);
    renderCities(set);
    renderGenders(set);
    renderAges(set);
    renderPlatforms(set);
    renderDevices(set);
    setState('ready');
  }

  function renderTotals(doc) {
    ['new', 'active'].forEach(function (u) {
      var v = $('total-' + u);
      v.textContent = fmt(doc[u].total);
      v.setAttribute('data-value', String(doc[u].total));
    });
    var active = doc.active.total;
    $('total-new-note').textContent = active ? '占活跃用户 ' + pct(doc.new.total / active) : '首次访问在这段时间内';
    $('total-active-note').textContent = '这段时间访问过的用户';
  }

  function emptyState(doc, set) {
    if (set.total > 0) return null;
    var first = doc.data_days.first;
    var last = doc.data_days.last;
    if (!first) {
      return {
        title: '还没有数据',
        text: '这个应用还没有导入任何访问记录。用 weanalysis ingest 导入访问记录后，刷新本页即可看到用户画像。'
      };
    }
    var jumpTo = last < state.session.yesterday ? last : state.session.yesterday;
    var jump = {
      label: '查看最近有数据的时间段',
      run: function () { state.end = jumpTo; load(); }
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

  // -- lists -------------------------------------------------------------------------------------

  function rankList(list, items, max) {
    list.textContent = '';
    var top = items.length ? items[0].value : 0;
    items.slice(0, max || items.length).forEach(function (it, i) {
      var li = el('li', { 'data-name': it.name, 'data-value': String(it.value), 'data-share': String(it.share) });
      li.appendChild(el('span', { 'class': 'rank-no' + (i < 3 ? ' rank-top' : '') }, String(i + 1)));
      li.appendChild(el('span', { 'class': 'rank-name', title: it.name }, it.name));
      var bar = el('span', { 'class': 'rank-bar' });
      var fill = el('span', { 'class': 'rank-fill' });
      fill.style.width = (top ? (100 * it.value / top) : 0).toFixed(1) + '%';
      bar.appendChild(fill);
      li.appendChild(bar);
      li.appendChild(el('span', { 'class': 'rank-value' }, fmt(it.value)));
      li.appendChild(el('span', { 'class': 'rank-share' }, pct(it.share)));
      list.appendChild(li);
    });
    if (!items.length) list.appendChild(el('li', { 'class': 'rank-empty' }, '暂无数据'));
  }

  function renderGeo(set) {
    var more = $('province-more');
    more.hidden = set.province.length <= PROVINCE_TOP;
    more.textContent = state.provincesAll ? '收起' : '展开全部 ' + set.province.length + ' 个地区';
    rankList($('province-list'), set.province, state.provincesAll ? 0 : PROVINCE_TOP);
    var off = set.province.filter(function (p) { return !p.map_name; });
    $('geo-note').textContent = off.length ? '不在地图上：' + off.map(function (p) {
      return p.name + ' ' + fmt(p.value) + ' 人';
    }).join('，') : '';
    if (!state.map) return;
    var data = set.province.filter(function (p) { return p.map_name; }).map(function (p) {
      return { name: p.map_name, value: p.value, share: p.share, full: p.name };
    });
    var max = data.length ? data[0].value : 1;
    state.charts.map.setOption({
      visualMap: { max: Math.max(max, 1) },
      series: [{ data: data }]
    });
  }

  function renderCities(set) {
    var more = $('city-more');
    more.hidden = set.city.length <= CITY_TOP;
    more.textContent = state.citiesAll ? '收起' : '展开全部 ' + set.city.length + ' 个城市';
    rankList($('city-list'), set.city, state.citiesAll ? 0 : CITY_TOP);
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
      animationDuration: 400
    };
  }

  function initCharts() {
    if (state.charts.ages) return;
    ['genders', 'ages', 'platforms', 'devices'].forEach(function (name) {
      state.charts[name] = echarts.init($('chart-' + name), null, { renderer: 'canvas' });
    });
    state.charts.map = echarts.init($('map'), null, { renderer: 'canvas' });
    var mapOption = base();
    mapOption.visualMap = {
      type: 'continuous', min: 0, max: 1, left: 8, bottom: 8, itemHeight: 90, itemWidth: 10,
      text: ['多', '少'], textStyle: { color: '#64748b', fontFamily: FONT }, calculable: false,
      inRange: { color: ['#eefaf3', '#a7e8c3', '#3cc783', '#078a48'] }
    };
    mapOption.series = [{
      type: 'map', map: 'china', roam: false, selectedMode: false,
      top: 8, bottom: 8, left: 8, right: 8, label: { show: false },
      itemStyle: { areaColor: '#f1f5f9', borderColor: '#ffffff', borderWidth: 0.8 },
      emphasis: { label: { show: true, color: '#0f172a' }, itemStyle: { areaColor: '#fbbf24' } },
      data: []
    }];
    var mapChart = state.charts.map;
    fetch('/static/vendor/china.json').then(function (r) { return r.json(); }).then(function (geo) {
      echarts.registerMap('china', geo);
      mapChart.setOption(mapOption);
      state.map = true;
      if (state.doc && state.doc[state.users].total) renderGeo(state.doc[state.users]);
    }).catch(function () {
      $('map').textContent = '地图加载失败';
    });
    window.addEventListener('resize', function () {
      Object.keys(state.charts).forEach(function (k) { state.charts[k].resize(); });
    });
  }

  function donut(chart, items, colors) {
    var option = base();
    option.color = items.map(function (it) { return colors[it.id] || '#94a3b8'; });
    option.legend = { bottom: 0, icon: 'circle', itemWidth: 8, itemHeight: 8, textStyle: { color: '#475569' } };
    option.series = [{
      type: 'pie', radius: ['48%', '72%'], center: ['50%', '45%'], avoidLabelOverlap: true,
      itemStyle: { borderColor: '#fff', borderWidth: 2 },
      label: { formatter: function (p) { return p.name + '\n' + pct(p.data.share); }, color: '#334155', lineHeight: 16 },
      labelLine: { length: 6, length2: 6 },
      data: items.map(function (it) { return { name: it.name, value: it.value, share: it.share }; })
    }];
    chart.setOption(option, true);
  }

  function renderGenders(set) { donut(state.charts.genders, set.genders, GENDER_COLORS); }

  function renderPlatforms(set) { donut(state.charts.platforms, set.platforms, PLATFORM_COLORS); }

  function renderAges(set) {
    // buckets in age order, 未知 last: the shape of the distribution reads better than a ranking
    var items = set.ages.slice().sort(function (a, b) {
      return (a.id || 99) - (b.id || 99);
    });
    var option = base();
    option.grid = { left: 8, right: 8, top: 24, bottom: 4, containLabel: true };
    option.xAxis = {
      type: 'category', data: items.map(function (it) { return it.name; }),
      axisTick: { show: false }, axisLine: { lineStyle: { color: '#cbd5e1' } },
      axisLabel: { color: '#475569', interval: 0, fontSize: 11 }
    };
    option.yAxis = { type: 'value', show: false };
    option.series = [{
      type: 'bar', barMaxWidth: 28,
      itemStyle: { color: function (p) { return p.data.id === 0 ? '#cbd5e1' : GREEN; }, borderRadius: [4, 4, 0, 0] },
      label: { show: true, position: 'top', color: '#334155', fontSize: 11, formatter: function (p) { return pct(p.data.share); } },
      data: items.map(function (it) { return { id: it.id, name: it.name, value: it.value, share: it.share }; })
    }];
    state.charts.ages.setOption(option, true);
  }

  function renderDevices(set) {
    var items = set.devices.slice().reverse(); // ECharts draws category 0 at the bottom
    var box = $('chart-devices');
    box.style.height = Math.max(160, 34 * items.length + 24) + 'px';
    state.charts.devices.resize();
    var option = base();
    option.grid = { left: 8, right: 96, top: 8, bottom: 8, containLabel: true };
    option.xAxis = { type: 'value', show: false };
    option.yAxis = {
      type: 'category', data: items.map(function (it) { return it.name; }),
      axisTick: { show: false }, axisLine: { show: false },
      axisLabel: { color: '#334155', fontSize: 12, width: 150, overflow: 'truncate' }
    };
    option.series = [{
      type: 'bar', barWidth: 16,
      itemStyle: { color: function (p) { return p.data.name === '未知' ? '#cbd5e1' : '#3b82f6'; }, borderRadius: 8 },
      label: {
        show: true, position: 'right', color: '#334155', fontSize: 12,
        formatter: function (p) { return fmt(p.data.value) + '  ' + pct(p.data.share); }
      },
      data: items.map(function (it) { return { name: it.name, value: it.value, share: it.share }; })
    }];
    state.charts.devices.setOption(option, true);
  }

  // -- wiring ------------------------------------------------------------------------------------

  function bind() {
    $('signin-form').addEventListener('submit', onSignin);
    $('signout').addEventListener('click', onSignout);
    Array.prototype.forEach.call(document.querySelectorAll('#period button'), function (b) {
      b.addEventListener('click', function () { state.days = Number(b.dataset.days); load(); });
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-users]'), function (b) {
      b.addEventListener('click', function () {
        if (state.users === b.dataset.users) return;
        state.users = b.dataset.users;
        syncControls();
        if (state.doc) render();
      });
    });
    $('end-date').addEventListener('click', function (ev) {
      // open the calendar wherever the field is clicked, not only on the browser's icon
      try { ev.target.showPicker(); } catch (e) { /* older browsers: their own behaviour */ }
    });
    $('end-date').addEventListener('change', function (ev) {
      var v = ev.target.value;
      if (!v) return;
      state.end = v > state.session.yesterday ? state.session.yesterday : v;
      load();
    });
    $('province-more').addEventListener('click', function () {
      state.provincesAll = !state.provincesAll;
      renderGeo(state.doc[state.users]);
    });
    $('city-more').addEventListener('click', function () {
      state.citiesAll = !state.citiesAll;
      renderCities(state.doc[state.users]);
    });
  }

  bind();
  api('GET', '/api/v1/session').then(start, function (e) {
    showSignin(e.status === 401 ? '' : e.message);
  });
})();
