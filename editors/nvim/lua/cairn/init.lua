-- Cairn for Neovim: starts `cairn lsp` for the buffers it serves and wires its completions,
-- chat and status into Neovim's own LSP client. Needs Neovim 0.11 or newer.
--
--   require('cairn').setup()                       -- defaults below
--   require('cairn').setup({ cmd = { '/path/to/cairn', 'lsp' } })
--
-- Neovim >= 0.12: ghost text through `textDocument/inlineCompletion`
-- (vim.lsp.inline_completion); the accept key inserts it and runs the item's `cairn.accept`
-- command, which records the acceptance in the provenance ledger.
-- Neovim 0.11: the completion menu through `textDocument/completion` (vim.lsp.completion);
-- accepting an item (<C-y>, or the accept key) runs its `cairn.accept` command.

local M = {}

local defaults = {
  cmd = { 'cairn', 'lsp' },
  filetypes = {
    'python', 'rust', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
    'go', 'java', 'c', 'cpp', 'cs', 'lua', 'sh', 'ruby', 'php',
  },
  root_markers = { '.git' },
  -- Use inline completion (ghost text) when Neovim has it (0.12+); false keeps the menu.
  inline = true,
  -- Ask for completions while typing (menu: on the server's trigger characters).
  autotrigger = true,
  -- Insert-mode keys; set one to false to leave it unmapped.
  keymaps = {
    accept = '<Tab>', -- accept the shown suggestion (else the key's own meaning)
    trigger = '<M-\\>', -- ask for a suggestion now (invoked)
    next = '<M-]>', -- next candidate
    prev = '<M-[>', -- previous candidate
  },
  -- Where :CairnChat shows answers: 'vsplit', 'split' or 'tab'.
  chat_layout = 'vsplit',
}

M.config = vim.deepcopy(defaults)

local has_inline = function()
  return M.config.inline and vim.lsp.inline_completion ~= nil
    and vim.lsp.inline_completion.enable ~= nil
end

--- The running Cairn client of a buffer (or of any buffer), if there is one.
---@param bufnr? integer
---@return vim.lsp.Client?
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = 'cairn', bufnr = bufnr })
  if #clients == 0 and bufnr then
    clients = vim.lsp.get_clients({ name = 'cairn' })
  end
  return clients[1]
end

-- Chat streams arrive as `$/progress` with the partialResultToken we sent; everything else
-- is work-done progress and goes to Neovim's own handler.
local chat_streams = {} ---@type table<string|integer, fun(delta: string)>

local function progress_handler(err, params, ctx, config)
  local on_delta = params and chat_streams[params.token]
  if on_delta then
    if type(params.value) == 'table' and type(params.value.delta) == 'string' then
      on_delta(params.value.delta)
    end
    return
  end
  return vim.lsp.handlers['$/progress'](err, params, ctx, config)
end

---------------------------------------------------------------------------------------------
-- Completion menu (Neovim 0.11)
---------------------------------------------------------------------------------------------

local function is_cairn_item(item)
  return type(item) == 'table' and type(item.data) == 'table' and item.data.recordId ~= nil
end

local function snippet_escape(text)
  return (text:gsub('[\\$}]', '\\%0'))
end

-- Neovim 0.11 inserts only the first word of a plain `textEdit.newText`, and a multi-line
-- `insertText` would be inserted with NULs for its newlines. A suggestion is a line or a
-- block, so: single-line text becomes the whole inserted word; multi-line text is inserted
-- as an (escaped, placeholder-free) snippet after the menu closes.
local function convert(item)
  if not is_cairn_item(item) then
    return {}
  end
  local text = item.textEdit and item.textEdit.newText or item.insertText or item.label
  if item.insertTextFormat == 2 then
    return {}
  end
  if text:find('\n', 1, true) then
    item.insertTextFormat = 2
    if item.textEdit then
      item.textEdit.newText = snippet_escape(text)
    else
      item.insertText = snippet_escape(text)
    end
    return { word = item.label, abbr = item.label, menu = '[cairn]' }
  end
  return { word = text, abbr = item.label, menu = '[cairn]' }
end

-- Track the selected menu item so a dismissal (<C-e>) can be reported as `rejected`.
local function watch_dismissal(bufnr, client_id)
  local group = vim.api.nvim_create_augroup('cairn.dismiss.' .. bufnr, { clear = true })
  local selected ---@type table?
  vim.api.nvim_create_autocmd('CompleteChanged', {
    group = group,
    buffer = bufnr,
    callback = function()
      local ci = vim.v.event.completed_item or {}
      local lsp_item = vim.tbl_get(ci, 'user_data', 'nvim', 'lsp', 'completion_item')
      selected = is_cairn_item(lsp_item) and lsp_item or nil
    end,
  })
  vim.api.nvim_create_autocmd('CompleteDone', {
    group = group,
    buffer = bufnr,
    callback = function()
      local reason = vim.v.event.reason
      local item = selected
      selected = nil
      if reason == 'cancel' and item then
        local client = vim.lsp.get_client_by_id(client_id)
        if client then
          client:exec_cmd({
            title = 'Dismiss',
            command = 'cairn.reject',
            arguments = { { recordId = item.data.recordId, reason = 'dismissed' } },
          }, { bufnr = bufnr })
        end
      end
    end,
  })
end

---------------------------------------------------------------------------------------------
-- Attach
---------------------------------------------------------------------------------------------

local function map(bufnr, lhs, rhs, desc, opts)
  if not lhs then
    return
  end
  vim.keymap.set('i', lhs, rhs, vim.tbl_extend('force', { buffer = bufnr, desc = desc }, opts or {}))
end

-- Tells the server where the cursor rests (`cairn/cursorMoved`), so it can warm the model for
-- a completion there before one is asked for. The server waits for the cursor to rest; this
-- only spares it a notification per line while scrolling.
local function report_cursor(client, bufnr)
  local timer = assert(vim.uv.new_timer())
  local function send()
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr
      or client:is_stopped() then
      return
    end
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
    client:notify('cairn/cursorMoved', params)
  end
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI', 'BufEnter', 'InsertEnter' }, {
    group = vim.api.nvim_create_augroup('cairn-cursor-' .. bufnr, { clear = true }),
    buffer = bufnr,
    callback = function()
      timer:stop()
      timer:start(100, 0, vim.schedule_wrap(send))
    end,
  })
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = bufnr,
    once = true,
    callback = function()
      timer:stop()
      if not timer:is_closing() then
        timer:close()
      end
    end,
  })
end

local function on_attach(client, bufnr)
  local keys = M.config.keymaps or {}
  report_cursor(client, bufnr)
  if has_inline() and client:supports_method('textDocument/inlineCompletion', bufnr) then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    map(bufnr, keys.accept, function()
      if not vim.lsp.inline_completion.get() then
        return keys.accept
      end
    end, 'Cairn: accept the suggestion', { expr = true, replace_keycodes = true })
    map(bufnr, keys.trigger, function()
      vim.lsp.inline_completion.get()
    end, 'Cairn: suggest')
    local select = vim.lsp.inline_completion.select or vim.lsp.inline_completion.jump
    if select then
      map(bufnr, keys.next, function()
        select({ count = 1 })
      end, 'Cairn: next suggestion')
      map(bufnr, keys.prev, function()
        select({ count = -1 })
      end, 'Cairn: previous suggestion')
    end
    return
  end

  -- The menu. Neovim 0.11 answers a completion with `completionItem/resolve` first when the
  -- server offers it and drops the item's command if the buffer changed before the reply;
  -- Cairn's resolve returns the item as it was, so skipping it makes every acceptance reach
  -- the ledger.
  local cp = client.server_capabilities.completionProvider
  if type(cp) == 'table' then
    cp.resolveProvider = false
  end
  vim.lsp.completion.enable(true, client.id, bufnr, {
    autotrigger = M.config.autotrigger,
    convert = convert,
  })
  watch_dismissal(bufnr, client.id)
  local function pum()
    return vim.fn.pumvisible() == 1
  end
  map(bufnr, keys.accept, function()
    return pum() and '<C-y>' or keys.accept
  end, 'Cairn: accept the suggestion', { expr = true, replace_keycodes = true })
  map(bufnr, keys.trigger, function()
    vim.lsp.completion.get()
  end, 'Cairn: suggest')
  map(bufnr, keys.next, function()
    return pum() and '<C-n>' or keys.next
  end, 'Cairn: next suggestion', { expr = true, replace_keycodes = true })
  map(bufnr, keys.prev, function()
    return pum() and '<C-p>' or keys.prev
  end, 'Cairn: previous suggestion', { expr = true, replace_keycodes = true })
end

---------------------------------------------------------------------------------------------
-- Chat and status
---------------------------------------------------------------------------------------------

local chat_buf ---@type integer?
local conversation_id ---@type string?
local token_seq = 0

local function chat_window()
  if not (chat_buf and vim.api.nvim_buf_is_valid(chat_buf)) then
    chat_buf = vim.api.nvim_create_buf(false, true)
    vim.bo[chat_buf].filetype = 'markdown'
    vim.bo[chat_buf].bufhidden = 'hide'
    pcall(vim.api.nvim_buf_set_name, chat_buf, 'cairn://chat')
  end
  if vim.fn.bufwinid(chat_buf) == -1 then
    local layout = M.config.chat_layout
    vim.cmd(layout == 'tab' and 'tab split' or layout == 'split' and 'split' or 'vsplit')
    vim.api.nvim_win_set_buf(0, chat_buf)
    vim.wo.wrap = true
    vim.cmd('wincmd p')
  end
  return chat_buf
end

local function append(buf, text)
  local last = vim.api.nvim_buf_line_count(buf)
  local tail = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ''
  local lines = vim.split(text, '\n', { plain = true })
  lines[1] = tail .. lines[1]
  vim.api.nvim_buf_set_lines(buf, last - 1, last, false, lines)
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then
    vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(buf), 0 })
  end
end

--- Ask Cairn a question about the repository. The answer streams into a scratch buffer.
---@param question string
---@param opts? { range?: lsp.Range, on_done?: fun(err: lsp.ResponseError?, result: table?) }
function M.chat(question, opts)
  opts = opts or {}
  local src = vim.api.nvim_get_current_buf()
  local client = M.client(src)
  if not client then
    vim.notify('cairn: no Cairn server is running (open a file in a git repository)', vim.log.levels.ERROR)
    return
  end
  local buf = chat_window()
  append(buf, (vim.api.nvim_buf_line_count(buf) > 1 and '\n\n' or '') .. '> ' .. question .. '\n\n')

  token_seq = token_seq + 1
  local token = ('cairn-chat-%d-%d'):format(vim.fn.getpid(), token_seq)
  local streamed = {}
  chat_streams[token] = function(delta)
    streamed[#streamed + 1] = delta
    append(buf, delta)
  end
  local params = {
    question = question,
    conversationId = conversation_id,
    partialResultToken = token,
  }
  if vim.bo[src].buftype == '' and vim.api.nvim_buf_get_name(src) ~= '' then
    params.uri = vim.uri_from_bufnr(src)
    params.range = opts.range
  end
  client:request('cairn/chat', params, function(err, result)
    chat_streams[token] = nil
    if err then
      append(buf, '\n[error ' .. tostring(err.code) .. '] ' .. tostring(err.message))
    elseif result then
      conversation_id = result.conversationId
      -- The final answer is authoritative (a fallback model may have restarted the stream).
      if result.answer ~= table.concat(streamed) then
        append(buf, (#streamed > 0 and '\n\n(final answer)\n' or '') .. result.answer)
      end
      for _, c in ipairs(result.citations or {}) do
        append(buf, ('\n[%d] %s:%d-%d'):format(c.n, c.path, c.startLine, c.endLine))
      end
      for i, e in ipairs(result.edits or {}) do
        append(buf, ('\n\nProposed edit %d (%s:%d) — :CairnApply %d to apply, :CairnReject %d to reject\n')
          :format(i, vim.uri_to_fname(e.uri), e.range.start.line + 1, i, i))
        append(buf, '```\n' .. e.newText .. '\n```')
      end
      M._edits = result.edits or {}
    end
    if opts.on_done then
      opts.on_done(err, result)
    end
  end, src)
end

--- Apply the n-th proposed edit of the last answer and record the acceptance.
function M.apply_edit(n)
  local e = (M._edits or {})[n]
  local client = M.client()
  if not (e and client) then
    vim.notify('cairn: no proposed edit ' .. tostring(n), vim.log.levels.WARN)
    return
  end
  vim.lsp.util.apply_workspace_edit({ changes = { [e.uri] = { { range = e.range, newText = e.newText } } } },
    client.offset_encoding)
  client:exec_cmd({ title = 'Accept', command = 'cairn.accept', arguments = { { recordId = e.recordId, uri = e.uri } } })
  M._edits[n] = nil
end

--- Reject the n-th proposed edit of the last answer.
function M.reject_edit(n)
  local e = (M._edits or {})[n]
  local client = M.client()
  if not (e and client) then
    vim.notify('cairn: no proposed edit ' .. tostring(n), vim.log.levels.WARN)
    return
  end
  client:exec_cmd({ title = 'Reject', command = 'cairn.reject',
    arguments = { { recordId = e.recordId, reason = 'rejected' } } })
  M._edits[n] = nil
end

--- Show the server's status: version, repository, model, index and ledger.
---@param on_done? fun(err: lsp.ResponseError?, result: table?)
function M.status(on_done)
  local client = M.client(vim.api.nvim_get_current_buf())
  if not client then
    vim.notify('cairn: no Cairn server is running', vim.log.levels.ERROR)
    return
  end
  client:request('cairn/status', nil, function(err, s)
    if on_done then
      return on_done(err, s)
    end
    if err then
      vim.notify('cairn/status: ' .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    local idx = s.index or {}
    vim.notify(table.concat({
      ('Cairn %s on %s'):format(s.version, s.repo),
      ('model: %s (%s) %s'):format(s.model.name, s.model.origin, s.model.modelId or ''),
      ('index: %s, %s files%s'):format(idx.state, tostring(idx.files), idx.message and (' — ' .. idx.message) or ''),
      ('ledger: %s%s'):format(s.ledger.path, s.ledger.records and (' (' .. s.ledger.records .. ' records)') or ''),
    }, '\n'))
  end)
end

---------------------------------------------------------------------------------------------
-- Setup
---------------------------------------------------------------------------------------------

function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('cairn: needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  if opts and opts.keymaps == false then
    M.config.keymaps = {}
  end

  vim.lsp.config('cairn', {
    cmd = M.config.cmd,
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    workspace_required = true,
    handlers = {
      ['$/progress'] = progress_handler,
      -- Neovim's default drops executeCommand errors; a lost acceptance should be visible.
      ['workspace/executeCommand'] = function(err, _, ctx)
        if err then
          local args = vim.tbl_get(ctx, 'params', 'arguments', 1) or {}
          vim.notify(('cairn: %s failed: %s'):format(
            vim.tbl_get(ctx, 'params', 'command') or 'command', err.message or vim.inspect(err)
          ) .. (args.recordId and (' (record ' .. args.recordId .. ')') or ''), vim.log.levels.WARN)
        end
      end,
    },
  })

  local group = vim.api.nvim_create_augroup('cairn', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == 'cairn' then
        on_attach(client, ev.buf)
      end
    end,
  })

  vim.api.nvim_create_user_command('CairnChat', function(cmd)
    local range
    if cmd.range > 0 then
      range = {
        start = { line = cmd.line1 - 1, character = 0 },
        ['end'] = { line = cmd.line2, character = 0 },
      }
    end
    local q = cmd.args
    if q == '' then
      q = vim.fn.input('Ask Cairn: ')
    end
    if q ~= '' then
      M.chat(q, { range = range })
    end
  end, { nargs = '*', range = true, desc = 'Ask Cairn about the repository (with a range: about those lines)' })
  vim.api.nvim_create_user_command('CairnStatus', function()
    M.status()
  end, { desc = 'Cairn server status' })
  vim.api.nvim_create_user_command('CairnApply', function(cmd)
    M.apply_edit(tonumber(cmd.args) or 1)
  end, { nargs = '?', desc = 'Apply a proposed edit of the last Cairn answer' })
  vim.api.nvim_create_user_command('CairnReject', function(cmd)
    M.reject_edit(tonumber(cmd.args) or 1)
  end, { nargs = '?', desc = 'Reject a proposed edit of the last Cairn answer' })

  vim.lsp.enable('cairn')
  -- Neovim 0.11 attaches buffers that were loaded before setup() only once VimEnter has
  -- happened (`nvim -c ...`, or setup called from a -c script): catch those up at VimEnter.
  if vim.v.vim_did_enter == 0 then
    vim.api.nvim_create_autocmd('VimEnter', {
      group = group,
      once = true,
      callback = function()
        pcall(vim.cmd.doautoall, 'nvim.lsp.enable FileType')
      end,
    })
  end
end

return M
