// The hub console: the page's second view (#console), for whoever runs the hub. Plain
// JavaScript, no build step: the page's entry module for this view, importing shared.js and
// inspector.js; app.js (the demo view) is untouched by it.
//
// - Topics: GET /api/topics/stream (one `topics` event a second) read with the hub's client
//   library (/ssehub.js), so a subscriber token goes in an Authorization header, and console tabs
//   open in one browser share one stream.
// - Publish: POST /api/messages with topic, event, message, private and, when the hub asks for
//   one, a publisher token.
// - Inspector: GET /stream?mode=live&topic=T, also read with fetch(), so each frame is shown as
//   the bytes the server sent (EventSource only exposes parsed events): inspector.js.
// Streams run only while the console is shown; tokens live in this page's memory only.

import * as shared from './shared.js';
import { createInspector } from './inspector.js';
import { SharedEventSource } from '/ssehub.js';

var EVENT_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
var TOPIC_LIMIT = 200;
var RETRY_MIN_MS = 1000;
var RETRY_MAX_MS = 15000;

function $(id) { return document.getElementById(id); }

var demoView = $('demo-view');
var consoleView = $('console-view');
var toDemo = $('to-demo');
var toConsole = $('to-console');
var tagline = document.querySelector('.tagline');
var demoTagline = tagline.textContent;
var CONSOLE_TAGLINE = 'The hub\'s topics, live; publish an event; inspect the bytes on the wire.';

var topicsState = $('topics-state');
var topicsDetail = $('topics-detail');
var topicsBody = $('topics-body');
var topicsEmpty = $('topics-empty');
var topicsMore = $('topics-more');
var subTokenField = $('sub-token-field');
var subToken = $('sub-token');

var form = $('console-form');
var cTopic = $('c-topic');
var cEvent = $('c-event');
var cMessage = $('c-message');
var cPrivate = $('c-private');
var cSend = $('c-send');
var cResult = $('c-result');
var cError = $('c-error');
var pubTokenField = $('pub-token-field');
var pubToken = $('pub-token');

var inspectorForm = $('inspector-form');
var iTopic = $('i-topic');
var iWatch = $('i-watch');
var iStop = $('i-stop');
var iState = $('i-state');

var active = false; // the console view is shown
var authChecked = false;
var topicsFeed = null; // { source } of the open topic stream (a SharedEventSource)
var topicsRetry = null;
var topicsDelay = RETRY_MIN_MS;
var rows = {}; // topic -> <tr>

// ---- helpers -------------------------------------------------------------------------------

function setPill(el, state, text) {
  el.setAttribute('data-state', state);
  if (el.textContent !== text) el.textContent = text;
}

function bearer(input) {
  var token = input.value.trim();
  return token ? { 'Authorization': 'Bearer ' + token } : {};
}

// ---- topics --------------------------------------------------------------------------------

function cell(row, index) {
  return row.children[index];
}

function newRow(topic) {
  var tr = document.createElement('tr');
  var labels = ['Topic', 'Subscribers', 'Last id', 'Events/s', 'History', ''];
  labels.forEach(function (label, i) {
    var td = document.createElement(i === 0 ? 'th' : 'td');
    if (i === 0) td.setAttribute('scope', 'row');
    if (label) td.setAttribute('data-label', label);
    if (i === 1 || i === 3 || i === 4) td.className = 'num';
    if (i === 2) td.className = 'id';
    tr.appendChild(td);
  });
  cell(tr, 0).textContent = topic;
  var inspect = document.createElement('button');
  inspect.type = 'button';
  inspect.className = 'small';
  inspect.textContent = 'Inspect';
  inspect.setAttribute('aria-label', 'Inspect ' + topic);
  inspect.addEventListener('click', function () {
    iTopic.value = topic;
    cTopic.value = topic;
    inspector.start(topic);
    $('inspector-title').focus();
  });
  cell(tr, 5).appendChild(inspect);
  return tr;
}

function setText(td, text) {
  if (td.textContent === text) return false;
  td.textContent = text;
  return true;
}

// Updates the table in place, row by row, so focus and selection survive the refresh.
function renderTopics(data) {
  var topics = Array.isArray(data.topics) ? data.topics : [];
  var seen = {};
  topics.forEach(function (info, index) {
    var name = String(info.topic);
    seen[name] = true;
    var tr = rows[name];
    if (!tr) {
      tr = newRow(name);
      rows[name] = tr;
    }
    if (topicsBody.children[index] !== tr) {
      topicsBody.insertBefore(tr, topicsBody.children[index] || null);
    }
    setText(cell(tr, 1), String(info.subscribers));
    var changed = setText(cell(tr, 2), info.last_id || '—');
    setText(cell(tr, 3), Number(info.events_per_second || 0).toFixed(2));
    setText(cell(tr, 4), String(info.history));
    if (changed && info.last_id) {
      tr.classList.remove('changed');
      void tr.offsetWidth; // restart the highlight
      tr.classList.add('changed');
    }
  });
  Object.keys(rows).forEach(function (name) {
    if (!seen[name]) {
      topicsBody.removeChild(rows[name]);
      delete rows[name];
    }
  });
  topicsEmpty.hidden = topics.length > 0;
  topicsMore.hidden = !data.truncated;
  if (data.truncated) {
    topicsMore.textContent = 'Showing the ' + topics.length + ' busiest of ' + data.total + ' topics.';
  }
}

function stopTopics() {
  if (topicsRetry) {
    clearTimeout(topicsRetry);
    topicsRetry = null;
  }
  if (topicsFeed) {
    topicsFeed.source.close();
    topicsFeed = null;
  }
}

// The stream failed for good (an answer the library does not retry): try again from here, later.
function retryTopics(why) {
  topicsFeed = null;
  if (!active) return;
  setPill(topicsState, 'error', 'retrying');
  topicsDetail.textContent = why + ' Retrying in ' + Math.round(topicsDelay / 1000) + ' s.';
  topicsRetry = setTimeout(function () {
    topicsRetry = null;
    startTopics();
  }, topicsDelay);
  topicsDelay = Math.min(topicsDelay * 2, RETRY_MAX_MS);
}

function startTopics() {
  stopTopics();
  var token = subToken.value.trim();
  var source = new SharedEventSource('/api/topics/stream?limit=' + TOPIC_LIMIT, token ? { token: token } : {});
  var feed = { source: source };
  topicsFeed = feed;
  setPill(topicsState, 'connecting', 'connecting');
  var closed = null;
  function data(event) {
    try {
      var body = JSON.parse(event.data);
      return body && body.data ? body.data : null;
    } catch (err) {
      return null;
    }
  }
  source.addEventListener('topics', function (event) {
    var table = data(event);
    if (topicsFeed !== feed || !table) return;
    topicsDelay = RETRY_MIN_MS;
    closed = null;
    setPill(topicsState, 'open', 'live');
    topicsDetail.textContent = 'Updated ' + new Date().toLocaleTimeString() +
      '. Events per second over the last 5 s; subscribers on this node.';
    renderTopics(table);
  });
  source.addEventListener('unavailable', function () {
    if (topicsFeed !== feed) return;
    setPill(topicsState, 'error', 'stale');
    topicsDetail.textContent = 'The hub cannot read its topics now (broker unavailable).';
  });
  source.addEventListener('close', function (event) {
    if (topicsFeed === feed) closed = data(event) || {};
  });
  source.addEventListener('error', function (event) {
    if (topicsFeed !== feed) return;
    if (source.readyState === SharedEventSource.CONNECTING) {
      // The library reconnects by itself (with a fresh token when it has one).
      var why = closed && closed.status === 'expired' ? 'The subscriber token expired.'
        : closed && closed.status === 'shutdown' ? 'The server is shutting down.'
          : 'The topic stream ended.';
      setPill(topicsState, 'error', 'retrying');
      topicsDetail.textContent = why + ' Reconnecting…';
      return;
    }
    var refusal = event.status ? (event.message || 'error') + ' (HTTP ' + event.status + ')' : '';
    if (event.status === 401 || event.status === 403) {
      topicsFeed = null;
      setPill(topicsState, 'error', 'refused');
      topicsDetail.textContent = 'Topics refused: ' + refusal +
        (subTokenField.hidden ? '' : '. Enter a valid subscriber token.');
      subTokenField.hidden = false;
      return;
    }
    retryTopics(refusal ? 'Topics refused: ' + refusal + '.' : 'Could not reach the server.');
  });
}

// ---- publish -------------------------------------------------------------------------------

function showPublishError(text, field) {
  cResult.textContent = '';
  cError.textContent = text;
  [cTopic, cEvent, cMessage, pubToken].forEach(function (input) {
    if (input === field) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  });
  if (field) field.focus();
}

form.addEventListener('submit', function (event) {
  event.preventDefault();
  showPublishError('', null);
  var topic = cTopic.value.trim();
  var type = cEvent.value.trim();
  var message = cMessage.value;
  var problem = shared.topicProblem(topic);
  if (problem) {
    showPublishError(problem, cTopic);
    return;
  }
  if (type && !EVENT_RE.test(type)) {
    showPublishError('Invalid event type "' + type + '": use 1 to 64 characters of A-Z a-z 0-9 _ . : -.', cEvent);
    return;
  }
  if (message.trim() === '') {
    showPublishError('Enter a message to publish.', cMessage);
    return;
  }
  var body = { message: message, topic: topic, private: cPrivate.checked };
  if (type) body.event = type;
  cSend.disabled = true;
  fetch('/api/messages', {
    method: 'POST',
    headers: Object.assign({ 'Content-Type': 'application/json', 'Accept': 'application/json' }, bearer(pubToken)),
    body: JSON.stringify(body)
  }).then(function (response) {
    if (!response.ok) return shared.failure(response).then(function (err) { throw err; });
    return response.json();
  }).then(function (answer) {
    var data = answer && answer.data ? answer.data : {};
    cMessage.value = '';
    cResult.textContent = 'Published ' + (data.private ? 'private ' : '') + (data.event || 'message') +
      ' event ' + data.id + ' to ' + data.topic + ' (' + data.subscribers + ' ' +
      (data.subscribers === 1 ? 'subscriber' : 'subscribers') + ' here).';
  }, function (err) {
    if (!err.status) {
      showPublishError('Could not reach the server. Is ssehub running?', null);
      return;
    }
    var field = err.status === 401 || err.status === 403 ? pubToken
      : /topic/i.test(err.message) ? cTopic
        : /event/i.test(err.message) ? cEvent
          : err.status === 400 || err.status === 413 ? cMessage : null;
    if (field === pubToken) pubTokenField.hidden = false;
    showPublishError('Not published: ' + err.message + '.', field);
  }).then(function () {
    cSend.disabled = false;
  });
});

// ---- inspector -----------------------------------------------------------------------------

var inspector = createInspector({
  topic: iTopic,
  stop: iStop,
  state: iState,
  error: $('i-error'),
  frames: $('frames'),
  framesEmpty: $('frames-empty'),
  wire: $('wire'),
  wireMeta: $('wire-meta'),
  setPill: setPill
}, function () { return bearer(subToken); });

inspectorForm.addEventListener('submit', function (event) {
  event.preventDefault();
  inspector.start(iTopic.value.trim());
});

iStop.addEventListener('click', function () {
  inspector.stop();
  iWatch.focus();
});

// A new subscriber token applies to both streams (on Enter, or when the field is left).
var appliedToken = '';
function applySubToken() {
  var token = subToken.value.trim();
  if (token === appliedToken) return;
  appliedToken = token;
  if (!active) return;
  startTopics();
  if (inspector.topic() !== null) inspector.start(inspector.topic());
}
$('sub-token-form').addEventListener('submit', function (event) {
  event.preventDefault();
  applySubToken();
});
subToken.addEventListener('change', applySubToken);

// ---- views ---------------------------------------------------------------------------------

// Shows the token fields the hub's configuration calls for (from GET /api/ping).
function checkAuth() {
  if (authChecked) return;
  authChecked = true;
  fetch('/api/ping', { headers: { 'Accept': 'application/json' } })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (ping) {
      var auth = ping && ping.auth;
      if (!auth) return;
      if (auth.publish) pubTokenField.hidden = false;
      if (auth.subscribe) subTokenField.hidden = false;
    }, function () { authChecked = false; });
}

function showView(fromUser) {
  var wantConsole = window.location.hash === '#console';
  if (wantConsole === active && fromUser !== 'init') return;
  active = wantConsole;
  demoView.hidden = active;
  consoleView.hidden = !active;
  document.body.setAttribute('data-view', active ? 'console' : 'demo');
  toDemo.toggleAttribute('aria-current', false);
  toConsole.toggleAttribute('aria-current', false);
  (active ? toConsole : toDemo).setAttribute('aria-current', 'page');
  document.title = active ? 'ssehub console' : 'ssehub demo';
  tagline.textContent = active ? CONSOLE_TAGLINE : demoTagline;
  if (active) {
    checkAuth();
    startTopics();
    if (fromUser === true) $('topics-title').focus();
  } else {
    stopTopics();
    if (inspector.topic() !== null) inspector.stop('stopped');
    setPill(topicsState, 'idle', 'idle');
    if (fromUser === true) $('publish-title').setAttribute('tabindex', '-1');
    if (fromUser === true) $('publish-title').focus();
  }
}

window.addEventListener('hashchange', function () { showView(true); });
window.addEventListener('pagehide', function () {
  stopTopics();
  if (inspector.topic() !== null) inspector.stop();
});
window.addEventListener('pageshow', function (event) {
  if (event.persisted && active) startTopics();
});

showView('init');
