// The ssehub demo page: plain JavaScript, no build step. The page's entry module for the demo
// view; it imports feed.js (the list of arrivals), stream.js (the one open EventSource and the id
// it resumes from), publish.js and hub.js (the tokens the hub asks for).
//
// Burst mode (the seed's contract): each submit opens GET /stream?topic=T, waits for the stream
// to open, POSTs the message, shows its repeats and closes on the `close` event.
// Live mode: one long-lived GET /stream?mode=live&topic=T stream; submitting only POSTs. The page
// remembers the last event id it saw so that streams it opens again (new topic, Connect, after
// the server ended the stream) resume from history; EventSource's own automatic reconnects send
// the Last-Event-ID header by themselves.

import { topicProblem } from './shared.js';
import { createFeed } from './feed.js';
import { createStream } from './stream.js';
import { publish } from './publish.js';
import { authNotices } from './hub.js';

var OPEN_TIMEOUT_MS = 10000;
var RECONNECT_MIN_MS = 2000;
var RECONNECT_MAX_MS = 30000;
var STATES = ['idle', 'connecting', 'open', 'closed', 'error'];

var form = document.getElementById('publish-form');
var messageInput = document.getElementById('message');
var topicInput = document.getElementById('topic');
var modeSelect = document.getElementById('mode');
var sendButton = document.getElementById('send');
var connectionButton = document.getElementById('connection');
var stateEl = document.getElementById('state');
var stateDetail = document.getElementById('state-detail');
var errorEl = document.getElementById('error');
var feed = createFeed({
  feed: document.getElementById('feed'),
  empty: document.getElementById('feed-empty'),
  clear: document.getElementById('clear'),
  onClear: function () { messageInput.focus(); }
});

// The one open stream, if any, and what it is for (stream.js).
var streams = createStream(OPEN_TIMEOUT_MS);
var liveWanted = true; // live mode: false after the user pressed Disconnect
var reconnectTimer = null;
var reconnectDelay = RECONNECT_MIN_MS;
var streamErrorShown = false; // the error shown is about the live stream, not the user's input

// ---- small helpers -------------------------------------------------------------------------

function parseData(event) {
  try {
    var parsed = JSON.parse(event.data);
    return parsed && typeof parsed === 'object' ? parsed : null;
  } catch (err) {
    return null;
  }
}

function currentTopic() {
  return topicInput.value.trim();
}

// ---- state, errors, feed -------------------------------------------------------------------

function setState(state, detail) {
  if (STATES.indexOf(state) < 0) state = 'error';
  if (stateEl.textContent !== state) stateEl.textContent = state;
  stateEl.setAttribute('data-state', state);
  if (typeof detail === 'string') stateDetail.textContent = detail;
}

// Shows an error; `field` is the input it is about (marked invalid, and focused unless
// `keepFocus`: a check run because focus left the field must not pull it back).
function showError(text, field, keepFocus) {
  streamErrorShown = false;
  errorEl.textContent = text;
  [messageInput, topicInput].forEach(function (input) {
    if (input === field) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  });
  if (field && !keepFocus) field.focus();
}

// The input a server error is about, to focus it.
function fieldFor(err) {
  if (err.status === 400 && /topic/i.test(err.message)) return topicInput;
  if (err.status === 400 || err.status === 413) return messageInput;
  return null;
}

// An error about the live stream: cleared again once the stream is back.
function showStreamError(text) {
  showError(text, null, true);
  streamErrorShown = true;
}

function clearError() {
  streamErrorShown = false;
  errorEl.textContent = '';
  messageInput.removeAttribute('aria-invalid');
  topicInput.removeAttribute('aria-invalid');
}

// ---- streams -------------------------------------------------------------------------------

function cancelReconnect() {
  if (reconnectTimer) {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
  }
}

// Burst: open the stream, then publish, then show the repeats until `close`.
function startBurst(message, topic) {
  cancelReconnect();
  if (streams.current() && streams.current().kind === 'burst') {
    feed.notice('info', 'Previous burst cancelled.');
  }
  setState('connecting', 'Opening a stream for topic ' + topic + '…');
  var received = 0;
  streams.open('burst', topic, '/stream?topic=' + encodeURIComponent(topic), {
    open: function (first, s) {
      if (!first) return;
      setState('open', 'Stream open on topic ' + topic + '. Publishing…');
      publish(message, topic).then(function (data) {
        if (streams.current() !== s) return;
        if (messageInput.value === message) messageInput.value = '';
        var note = 'Published' + (data.id ? ' event ' + data.id : '') + ' to ' + topic + '.';
        if (received === 0) setState('open', note + ' Waiting for the repeats…');
      }, function (err) {
        if (streams.current() !== s) return;
        streams.close();
        setState('error', 'The message was not published.');
        showError(err.message, fieldFor(err));
      });
    },
    message: function (event, s) {
      var payload = parseData(event);
      var data = payload && payload.data ? payload.data : {};
      received += 1;
      var counter = typeof data.sequence === 'number' && typeof data.total === 'number'
        ? '#' + data.sequence + '/' + data.total : '#' + received;
      feed.arrival(event, payload, counter);
      setState('open', 'Received ' + counter.slice(1) + ' on topic ' + s.topic + '.');
    },
    close: function (event) {
      var payload = parseData(event);
      var data = payload && payload.data ? payload.data : {};
      streams.close();
      if (data.status === 'complete') {
        setState('closed', 'Burst complete: ' + received + ' ' +
          (received === 1 ? 'arrival' : 'arrivals') + '. Stream closed.');
      } else if (data.status === 'shutdown') {
        setState('closed', 'The server is shutting down; stream closed.');
        feed.notice('warning', 'Server shutting down: the stream was closed after ' +
          received + ' of the repeats.');
      } else {
        setState('closed', 'Stream closed by the server' +
          (data.message ? ': ' + data.message : '') + '.');
        feed.notice('warning', 'Stream closed early (' + (data.status || 'unknown') + ').');
      }
    },
    error: function (event, s) {
      // A burst is not resumed: an automatic reconnect would start a new burst.
      streams.close();
      if (!s.opened) {
        setState('error', 'Could not open the stream.');
        showError('Could not open the event stream. Is the server running?');
      } else {
        setState('error', 'The stream was interrupted after ' + received + ' arrivals.');
        showError('The connection to the server was lost.');
      }
    },
    timeout: function () {
      streams.close();
      setState('error', 'The stream did not open in time.');
      showError('The server did not answer in time. Try again.');
    }
  });
}

function liveUrl(topic) {
  var url = '/stream?mode=live&topic=' + encodeURIComponent(topic);
  if (streams.lastId()) url += '&lastEventId=' + encodeURIComponent(streams.lastId());
  return url;
}

function scheduleReconnect(reason) {
  cancelReconnect();
  var delay = reconnectDelay;
  reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
  setState(stateEl.textContent === 'error' ? 'error' : 'closed',
    reason + ' Reconnecting in ' + Math.round(delay / 1000) + ' s…');
  reconnectTimer = setTimeout(function () {
    reconnectTimer = null;
    if (modeSelect.value === 'live' && liveWanted) connectLive();
  }, delay);
}

function connectLive() {
  cancelReconnect();
  var topic = currentTopic();
  var problem = topicProblem(topic);
  if (problem) {
    streams.close();
    setState('idle', 'Not connected: fix the topic to start the live feed.');
    showError(problem, topicInput, true);
    return;
  }
  setState('connecting', 'Connecting to topic ' + topic +
    (streams.lastId() ? ', resuming after event ' + streams.lastId() : '') + '…');
  streams.open('live', topic, liveUrl(topic), {
    open: function (first, s) {
      reconnectDelay = RECONNECT_MIN_MS;
      if (streamErrorShown) clearError();
      setState('open', 'Live on topic ' + s.topic + '.' +
        (first ? '' : ' Reconnected; missed events are replayed.'));
      if (!first) feed.notice('info', 'Reconnected to ' + s.topic + '.');
    },
    message: function (event) {
      feed.arrival(event, parseData(event), '');
      streams.remember(event.lastEventId);
    },
    gap: function (event) {
      var payload = parseData(event);
      var data = payload && payload.data ? payload.data : {};
      feed.notice('gap', 'Some events may have been missed' +
        (data.requested ? ' after event ' + data.requested : '') + ': ' +
        (data.message || 'history no longer holds them all') + '.');
    },
    close: function (event, s) {
      var payload = parseData(event);
      var data = payload && payload.data ? payload.data : {};
      streams.close();
      var why = data.status === 'shutdown' ? 'The server is shutting down.'
        : 'The server closed the stream' + (data.message ? ' (' + data.message + ')' : '') + '.';
      feed.notice('warning', why);
      setState('closed');
      if (liveWanted) scheduleReconnect(why);
      updateConnectionButton();
    },
    error: function (event, s) {
      if (s.source.readyState === EventSource.CONNECTING) {
        // EventSource reconnects by itself and sends Last-Event-ID.
        setState('connecting', s.opened
          ? 'Connection lost; reconnecting to ' + s.topic + '…'
          : 'Waiting for the server…');
        return;
      }
      // The browser gave up (the server refused the stream): retry from here, later.
      streams.close();
      setState('error');
      showStreamError('The live stream failed. Is the server running?');
      if (liveWanted) scheduleReconnect('The live stream failed.');
    },
    timeout: function () {
      streams.close();
      setState('error');
      showStreamError('The server did not open the live stream in time.');
      if (liveWanted) scheduleReconnect('The live stream did not open.');
    }
  });
  updateConnectionButton();
}

function disconnectLive(detail) {
  cancelReconnect();
  streams.close();
  setState('closed', detail);
  updateConnectionButton();
}

// Resolves once the live stream is open (or at once when there is none to wait for).
function whenLiveOpen(timeoutMs) {
  return new Promise(function (resolve) {
    var s = streams.current();
    if (!s || s.kind !== 'live' || s.source.readyState === EventSource.OPEN) {
      resolve();
      return;
    }
    var done = false;
    var finish = function () {
      if (done) return;
      done = true;
      s.source.removeEventListener('open', finish);
      resolve();
    };
    s.source.addEventListener('open', finish);
    setTimeout(finish, timeoutMs);
  });
}

function updateConnectionButton() {
  var live = modeSelect.value === 'live';
  connectionButton.hidden = !live;
  var connected = live && liveWanted;
  connectionButton.textContent = connected ? 'Disconnect' : 'Connect';
  connectionButton.setAttribute('aria-pressed', 'false');
}

// ---- wiring --------------------------------------------------------------------------------

function applyMode() {
  clearError();
  cancelReconnect();
  streams.close();
  if (modeSelect.value === 'live') {
    liveWanted = true;
    connectLive();
  } else {
    setState('idle', 'Burst mode: each message opens its own stream.');
  }
  updateConnectionButton();
}

form.addEventListener('submit', function (event) {
  event.preventDefault();
  clearError();
  var message = messageInput.value;
  var topic = currentTopic();
  if (message.trim() === '') {
    showError('Enter a message to send.', messageInput);
    return;
  }
  if (modeSelect.value === 'burst') {
    var problem = topicProblem(topic);
    if (problem) {
      showError(problem, topicInput);
      return;
    }
    startBurst(message, topic);
    return;
  }
  // Live: the event arrives on the live stream. If the topic changed, follow it first.
  if (liveWanted && (!streams.current() || streams.current().topic !== topic) && !topicProblem(topic)) {
    connectLive();
  }
  sendButton.disabled = true;
  whenLiveOpen(OPEN_TIMEOUT_MS)
    .then(function () {
      return publish(message, topic);
    })
    .then(function (data) {
      messageInput.value = '';
      var stream = streams.current();
      if (!stream || stream.kind !== 'live' || stream.topic !== topic) {
        feed.notice('info', 'Published' + (data.id ? ' event ' + data.id : '') + ' to ' + topic +
          '. The live feed is not connected to that topic.');
      }
    }, function (err) {
      showError(err.message, fieldFor(err));
    })
    .then(function () {
      sendButton.disabled = false;
    });
});

modeSelect.addEventListener('change', applyMode);

topicInput.addEventListener('change', function () {
  if (modeSelect.value !== 'live' || !liveWanted) return;
  if (streams.current() && streams.current().topic === currentTopic()) return;
  clearError();
  connectLive();
});

connectionButton.addEventListener('click', function () {
  clearError();
  if (liveWanted) {
    liveWanted = false;
    disconnectLive('Disconnected. Press Connect to resume' +
      (streams.lastId() ? ' after event ' + streams.lastId() : '') + '.');
  } else {
    liveWanted = true;
    reconnectDelay = RECONNECT_MIN_MS;
    connectLive();
  }
});

window.addEventListener('pagehide', function () {
  cancelReconnect();
  streams.close();
});

// Back/forward cache: the page comes back without its stream.
window.addEventListener('pageshow', function (event) {
  if (event.persisted) applyMode();
});

// Say so when the hub asks for tokens (hub.js).
authNotices(feed);

// The browser may restore the form's previous mode on reload: honour it.
if (modeSelect.value === 'live') applyMode();
else updateConnectionButton();
